//! Test fixtures for edge-node integration tests: a scripted origin (a real
//! HTTP server on 127.0.0.1:0 whose answer per path the test decides, and
//! which counts requests) and an edge started in-process against it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use edge_node::{Config, RunningServer, Server};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the scripted origin received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: http::Method,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A handler: the request seen and how many requests this path had before.
pub type Handler = Arc<dyn Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync>;

#[derive(Default)]
struct State {
    routes: HashMap<String, Handler>,
    delays: HashMap<String, std::time::Duration>,
    seen: HashMap<String, Vec<Seen>>,
}

pub struct ScriptedOrigin {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    /// Connections open now, and the most ever open at once.
    connections: Arc<(AtomicUsize, AtomicUsize)>,
}

impl ScriptedOrigin {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let connections: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
        let st = state.clone();
        let counts = connections.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let st = st.clone();
                let counts = counts.clone();
                let open = counts.0.fetch_add(1, Ordering::SeqCst) + 1;
                counts.1.fetch_max(open, Ordering::SeqCst);
                conns.spawn(async move {
                    let _closed = Closed(counts);
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(answer(&st, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            task,
            connections,
        }
    }

    /// The most connections that were open at once.
    pub fn max_connections_seen(&self) -> usize {
        self.connections.1.load(Ordering::SeqCst)
    }

    /// Scripts the answer for `path` (path and query as sent).
    pub fn route(
        &self,
        path: &str,
        handler: impl Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), Arc::new(handler));
    }

    /// Makes the origin take `delay` before answering `path`.
    pub fn delay(&self, path: &str, delay: std::time::Duration) {
        self.state
            .lock()
            .unwrap()
            .delays
            .insert(path.to_string(), delay);
    }

    /// Requests received for `path` (health checks excluded).
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .seen
            .get(path)
            .map_or(0, Vec::len)
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.state
            .lock()
            .unwrap()
            .seen
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Stops listening and drops every open connection.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Counts a connection closed when its task ends.
struct Closed(Arc<(AtomicUsize, AtomicUsize)>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    if path == "/healthz" {
        return Response::new(Full::new(Bytes::from_static(b"ok")));
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method,
        headers: parts.headers,
        body,
    };
    let (handler, n, delay) = {
        let mut st = state.lock().unwrap();
        let list = st.seen.entry(path.clone()).or_default();
        let n = list.len();
        list.push(seen.clone());
        (
            st.routes.get(&path).cloned(),
            n,
            st.delays.get(&path).copied(),
        )
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    match handler {
        Some(h) => h(&seen, n),
        None => Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"no script")))
            .unwrap(),
    }
}

/// A response with a body and header pairs.
pub fn resp(status: u16, body: &str, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// The TOML of an edge with one pool over `origins`, HTTP on port 0, a disk
/// tier in `dir`, plus `extra` appended.
pub fn edge_toml(origins: &[SocketAddr], dir: &std::path::Path, extra: &str) -> String {
    let list: Vec<String> = origins.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
[listen]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "test-admin-token-0123456789"
[cache]
memory_capacity = "64MiB"
max_memory_object = "1MiB"
disk = {{ dir = "{dir}", capacity = "1GiB" }}
[[pools]]
name = "main"
origins = [{list}]
health_interval = "200ms"
rise = 1
fall = 1
[[sites]]
pool = "main"
{extra}
"#,
        dir = dir.join("cache").display(),
        list = list.join(", "),
    )
}

pub async fn start_edge_with(toml: &str, dir: &std::path::Path) -> RunningServer {
    let config = Config::from_toml(&dir.join("edge.toml"), toml).expect("valid test config");
    Server::start(config).await.expect("edge starts")
}

pub async fn start_edge(origin: &ScriptedOrigin, dir: &std::path::Path) -> RunningServer {
    start_edge_with(&edge_toml(&[origin.addr], dir, ""), dir).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn url(edge: &RunningServer, path: &str) -> String {
    format!("http://{}{}", edge.http_addr().unwrap(), path)
}

pub fn cache_status(r: &reqwest::Response) -> String {
    r.headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The path of a plugin component, building the plugins workspace once per
/// test binary (a no-op when up to date).
pub fn plugin_wasm(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = root.join("plugins/Cargo.toml");
        let status =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "--manifest-path",
                ])
                .arg(&manifest)
                // Pinned, so a CARGO_TARGET_DIR set for the main workspace
                // does not move the components away from where they are
                // looked up.
                .arg("--target-dir")
                .arg(root.join("plugins/target"))
                .status()
                .expect("running cargo for the plugins");
        assert!(
            status.success(),
            "building the plugins failed (is the wasm32-wasip2 target installed?)"
        );
        root.join("plugins/target/wasm32-wasip2/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// `toml` with `grant` (e.g. `backends = ["main"]`) added to the
/// `[[plugins]]` entry named `plugin`.
pub fn grant(toml: &str, plugin: &str, grant: &str) -> String {
    let entry = format!("[[plugins]]\nname = \"{plugin}\"\n");
    assert!(toml.contains(&entry), "no [[plugins]] entry `{plugin}`");
    toml.replace(&entry, &format!("{entry}{grant}\n"))
}

/// An edge TOML with the given `[[plugins]]` (name, file) and one site
/// chaining `chain` in front of the pool, with `site_config` as its
/// `plugin_config` inline-table body, plus `extra` top-level TOML.
pub fn plugin_edge_toml(
    origin: SocketAddr,
    dir: &std::path::Path,
    plugins: &[(&str, &std::path::Path)],
    chain: &[&str],
    site_config: &str,
    extra: &str,
) -> String {
    let mut toml = edge_toml(&[origin], dir, "");
    let chain: Vec<String> = chain.iter().map(|c| format!("\"{c}\"")).collect();
    toml.push_str(&format!(
        "plugins = [{}]\nplugin_config = {{ {site_config} }}\n",
        chain.join(", ")
    ));
    for (name, file) in plugins {
        toml.push_str(&format!("[[plugins]]\nname = \"{name}\"\nfile = \"{}\"\ntimeout = \"2s\"\nmemory = \"32MiB\"\nmax_response_bytes = \"8MiB\"\n", file.display()));
    }
    toml.push_str(&format!(
        "[plugin_runtime]\ncompile_cache_dir = \"{}\"\nreload_interval = \"100ms\"\n{extra}",
        dir.join("wasm-cache").display()
    ));
    toml
}

/// The `waypost_edge_plugin_request_seconds_count` of `plugin` and
/// `outcome` in a metrics page, summed over versions; each version label
/// must be a 12-hex-digit content hash.
pub fn plugin_count(metrics: &str, plugin: &str, outcome: &str) -> Option<u64> {
    let prefix =
        format!("waypost_edge_plugin_request_seconds_count{{plugin=\"{plugin}\",version=\"");
    let suffix = format!("\",outcome=\"{outcome}\"}}");
    let counts: Vec<u64> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (version, rest) = rest.split_at_checked(12)?;
            assert!(
                version.bytes().all(|b| b.is_ascii_hexdigit()),
                "version label {version:?}"
            );
            rest.strip_prefix(&suffix)?.trim().parse().ok()
        })
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}
