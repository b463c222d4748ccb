//! `waypost up`: one region (origin + edge) on loopback, in this process,
//! on embedded defaults; sample assets uploaded through the origin's API;
//! a first request shown as a miss and then a hit.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

/// The write/purge token of the local platform. Local use only.
pub const DEV_TOKEN: &str = "waypost-dev-token";

#[derive(clap::Args)]
pub struct UpArgs {
    /// Loopback address of the region (every 127.x.y.z works on Linux).
    #[arg(long, default_value = "127.0.1.1")]
    ip: IpAddr,
    /// Port of the edge's public HTTP listener.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Port of the edge's admin listener (health, metrics, purge).
    #[arg(long, default_value_t = 9080)]
    admin_port: u16,
    /// Port of the origin.
    #[arg(long, default_value_t = 7070)]
    origin_port: u16,
    /// Where the origin's store and the edge's disk cache live.
    #[arg(long, default_value = ".waypost")]
    data_dir: PathBuf,
    /// UDP/TCP port of the local GeoDNS server (on --ip).
    #[arg(long, default_value_t = 5353)]
    dns_port: u16,
    /// Exit after showing the platform working instead of serving.
    #[arg(long)]
    check: bool,
}

const SAMPLES: &[(&str, &str, &str, &str)] = &[
    (
        "hello.txt",
        "text/plain",
        "demo",
        "Hello from the Waypost edge!\n",
    ),
    (
        "index.html",
        "text/html",
        "demo html",
        "<!doctype html><title>Waypost</title><h1>It works</h1>\n",
    ),
    (
        "static/app.css",
        "text/css",
        "demo css",
        "body { font-family: sans-serif; }\n",
    ),
];

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    service_base::logging::init_json();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    eprintln!("[1/4] starting origin ...");
    let mut origin_config = origin::Config::for_data_dir(data_dir.join("origin"), DEV_TOKEN);
    origin_config.listen = SocketAddr::new(args.ip, args.origin_port);
    origin_config.cache_rules.push(origin::CacheRule {
        prefix: "/static/".into(),
        cache_control: "public, max-age=86400, stale-while-revalidate=60".into(),
    });
    let origin = origin::Server::start(origin_config)
        .await
        .context("starting the origin")?;
    let origin_addr = origin.local_addr();

    eprintln!("[2/4] starting edge ...");
    let edge_toml = format!(
        r#"
[listen]
http = "{http}"
[admin]
listen = "{admin}"
token = "{DEV_TOKEN}"
[cache]
memory_capacity = "256MiB"
disk = {{ dir = "{cache}", capacity = "4GiB" }}
[[pools]]
name = "origin"
origins = ["{origin_addr}"]
[feed]
pool = "origin"
[[sites]]
hosts = ["*"]
pool = "origin"
{plugin_sites}"#,
        http = SocketAddr::new(args.ip, args.http_port),
        admin = SocketAddr::new(args.ip, args.admin_port),
        cache = data_dir.join("edge-cache").display(),
        plugin_sites = plugin_sites(&data_dir),
    );
    let edge_config = edge_node::Config::from_toml(&data_dir.join("edge.toml"), &edge_toml)?;
    let edge = edge_node::Server::start(edge_config)
        .await
        .context("starting the edge")?;
    let edge_url = format!(
        "http://{}",
        edge.http_addr().expect("http listener configured")
    );
    let admin_url = format!("http://{}", edge.admin_addr());

    let dns = crate::up_dns::start(
        args.ip,
        args.dns_port,
        args.ip,
        &format!("{admin_url}/healthz"),
    )
    .await?;

    eprintln!("[3/4] uploading sample assets ...");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    for (path, ctype, keys, body) in SAMPLES {
        let resp = client
            .put(format!("http://{origin_addr}/assets/{path}"))
            .bearer_auth(DEV_TOKEN)
            .header("content-type", *ctype)
            .header("surrogate-key", *keys)
            .body(*body)
            .send()
            .await
            .with_context(|| format!("uploading {path}"))?;
        anyhow::ensure!(
            resp.status().is_success(),
            "uploading {path}: origin answered {}",
            resp.status()
        );
    }

    eprintln!("[4/4] fetching through the edge ...");
    for attempt in ["first", "second"] {
        let resp = client
            .get(format!("{edge_url}/assets/hello.txt"))
            .send()
            .await?;
        let cs = resp
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        anyhow::ensure!(
            resp.status().is_success(),
            "edge answered {}",
            resp.status()
        );
        println!(
            "  {attempt} GET /assets/hello.txt -> {}  Cache-Status: {cs}",
            resp.status()
        );
    }

    if plugin_dir().is_some() {
        let resp = client.get(format!("{edge_url}/hello")).send().await?;
        let plugin = resp
            .headers()
            .get("x-plugin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let first = resp
            .text()
            .await?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        println!("  GET /hello -> plugin `{plugin}` answered: {first}");
        let resp = client
            .get(format!("{edge_url}/assets/static/app.css"))
            .send()
            .await?;
        let hsts = resp
            .headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        println!(
            "  GET /assets/static/app.css -> security-headers plugin added Strict-Transport-Security: {hsts}"
        );
    }

    println!();
    println!("Waypost is up (1 region, data in {}):", data_dir.display());
    println!("  edge    {edge_url}");
    println!("  admin   {admin_url}   (health, metrics, purge; token {DEV_TOKEN})");
    println!("  origin  http://{origin_addr}   (PUT /assets/... with the token)");
    println!(
        "  geodns  udp+tcp {}   (zone waypost.test)",
        dns.udp_addrs()[0]
    );
    println!();
    println!("Try:");
    println!("  curl -i {edge_url}/assets/hello.txt");
    println!("  curl -i -H 'Range: bytes=0-4' {edge_url}/assets/hello.txt");
    println!("  curl -X POST -H 'Authorization: Bearer {DEV_TOKEN}' '{admin_url}/purge?key=demo'");
    println!("  curl -s {admin_url}/metrics | grep waypost_edge_requests");
    println!(
        "  {}   # GeoDNS: the nearest healthy edge",
        crate::up_dns::dig_line(&dns)
    );
    if plugin_dir().is_some() {
        println!("  curl -i {edge_url}/hello                  # a wasm plugin answering");
        println!(
            "  curl -I {edge_url}/assets/static/app.css  # a plugin chained in front of the cache"
        );
    }
    if args.check {
        dns.shutdown().await;
        edge.shutdown().await;
        origin.shutdown().await;
        return Ok(());
    }
    println!();
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping ...");
    dns.shutdown().await;
    edge.shutdown().await;
    origin.shutdown().await;
    Ok(())
}

/// Where the example plugins are built, once they are.
fn plugin_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/target/wasm32-wasip2/release"
    ));
    ["hello", "security-headers"]
        .iter()
        .all(|p| dir.join(format!("{p}.wasm")).is_file())
        .then_some(dir)
}

/// Builds the example plugins if needed; without the wasm32-wasip2
/// target the platform starts without them and says how to add them.
fn ensure_plugins() -> Option<PathBuf> {
    if let Some(dir) = plugin_dir() {
        return Some(dir);
    }
    eprintln!("      building the example plugins (wasm32-wasip2) ...");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/Cargo.toml");
    let built =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
                manifest,
                "--target-dir",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/target"),
            ])
            .status()
            .is_ok_and(|s| s.success());
    if !built {
        eprintln!(
            "      plugins not built: run `rustup target add wasm32-wasip2` and start again to see them"
        );
    }
    plugin_dir()
}

/// Sites that put the example plugins in front of the origin: `/hello`
/// answered by a plugin, `/assets/static/` through the security-headers
/// middleware and then the cache.
fn plugin_sites(data_dir: &std::path::Path) -> String {
    let Some(dir) = ensure_plugins() else {
        return String::new();
    };
    format!(
        r#"[[sites]]
hosts = ["*"]
path_prefix = "/hello"
pool = "origin"
plugins = ["hello"]
[[sites]]
hosts = ["*"]
path_prefix = "/assets/static/"
pool = "origin"
plugins = ["security-headers"]
[[plugins]]
name = "hello"
file = "{dir}/hello.wasm"
[[plugins]]
name = "security-headers"
file = "{dir}/security-headers.wasm"
[plugin_runtime]
compile_cache_dir = "{cache}"
"#,
        dir = dir.display(),
        cache = data_dir.join("wasm-cache").display(),
    )
}
