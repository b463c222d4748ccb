//! Helpers for end-to-end tests: build the workspace binaries, start them
//! as real processes, read the address each prints when it is listening, and
//! kill them when the test ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod s3;

/// The directory holding the workspace's binaries for this build profile,
/// after making sure they are built (a no-op when up to date).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let test_exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> → target/<profile>
        let profile_dir = test_exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // The same selection `cargo test --workspace` builds, so under the
        // README's test command this is a no-op; a narrower `-p` build
        // resolves features differently and rebuilds the servers once more.
        cmd.args(["build", "--workspace", "--bins", "--tests"]);
        // Cargo gives this test process its package's CARGO_PKG_*,
        // CARGO_MANIFEST_DIR and the like; ring's build script tracks some
        // of them, so passing them on would rebuild ring and everything
        // above it (~3 minutes on two cores) instead of a no-op.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
                "CARGO_TARGET_TMPDIR",
            ]
            .iter()
            .any(|p| name.starts_with(p))
            {
                cmd.env_remove(name.as_ref());
            }
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building the binaries failed");
        profile_dir
    })
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    /// Every `http://` or `https://` address the process announced on
    /// stdout, in order.
    pub addrs: Vec<String>,
}

impl Proc {
    /// Starts `bin` with `args` and waits until it has printed `lines`
    /// lines containing `http://` or `https://` (its listening addresses).
    pub fn start(bin: &str, args: &[&str], lines: usize) -> anyhow::Result<Self> {
        let path = bin_dir().join(bin);
        let mut child = Command::new(&path)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut addrs = Vec::new();
        while addrs.len() < lines {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                let status = child.wait()?;
                bail!("{bin} exited ({status}) before announcing its addresses");
            }
            if let Some(i) = line.find("http://").or_else(|| line.find("https://")) {
                addrs.push(line[i..].trim().to_string());
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Ok(Self { child, addrs })
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An edge process listening on `ip` (HTTP and admin, port 0) with a
/// 64 MiB disk cache in `dir/<name>`, caching everything from the one
/// plain-HTTP origin `origin` (`host:port`); `token` is its admin token.
/// Its config is written to `dir/<name>.toml`.
pub fn start_edge(dir: &Path, name: &str, ip: &str, origin: &str, token: &str) -> Proc {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"
[listen]
http = "{ip}:0"
[admin]
listen = "{ip}:0"
token = "{token}"
[cache]
disk = {{ dir = "{name}", capacity = "64MiB" }}
[[pools]]
name = "origin"
origins = ["{origin}"]
[[sites]]
pool = "origin"
"#
        ),
    )
    .expect("writing the edge's config");
    Proc::start(
        "edge-node",
        &["--config", config.to_str().expect("UTF-8 path")],
        2,
    )
    .expect("the edge starts")
}

/// Polls `url` until it answers 200 (readiness), up to `limit`. A raw
/// HTTP/1.1 GET keeps this helper free of an async runtime.
pub fn wait_healthy(url: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !answers_200(url) {
        if Instant::now() > deadline {
            bail!("{url} did not become healthy within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn answers_200(url: &str) -> bool {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let Ok(mut s) = std::net::TcpStream::connect(authority) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    s.write_all(req.as_bytes()).is_ok()
        && s.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.1 200")
}

/// A port that was free on `ip` a moment ago, for processes whose address
/// must be known before they start (Raft members list each other). The
/// kernel does not hand the same ephemeral port out again right away, so
/// the window in which another process could take it is small.
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

/// One origin region of a cluster written by [`write_origin_cluster`].
pub struct OriginRegion {
    /// `host:port` it listens on and the others reach it at.
    pub addr: String,
    pub config: PathBuf,
}

/// Writes the configs of three origin regions (see
/// [`write_origin_cluster`]), starts them as processes and waits until each
/// answers `/healthz` (a leader elected, its log applied).
pub fn start_origin_cluster(
    dir: &Path,
    ips: [&str; 3],
    token: &str,
) -> (Vec<OriginRegion>, Vec<Proc>) {
    let regions = write_origin_cluster(dir, ips, token);
    let procs = start_origins(&regions);
    for r in &regions {
        wait_healthy(
            &format!("http://{}/healthz", r.addr),
            Duration::from_secs(30),
        )
        .expect("the origin becomes healthy");
    }
    (regions, procs)
}

/// Three origin regions as [`start_origin_cluster`] starts them, but with
/// TLS on every hop, as `waypost up` runs them: certificates from a CA in
/// `dir/tls` (made by `waypost cert`), HTTPS on the public listeners and
/// mutual TLS between the regions on `[peer]` listeners of their own (the
/// members' addresses). `OriginRegion::addr` is the public listener.
/// Returns the CA file clients trust too.
pub fn start_origin_cluster_tls(
    dir: &Path,
    ips: [&str; 3],
    token: &str,
) -> (Vec<OriginRegion>, Vec<Proc>, PathBuf) {
    let (peers, members) = cluster_addrs(ips);
    let mut regions = Vec::new();
    for (i, (ip, peer)) in ips.iter().zip(&peers).enumerate() {
        let node = (i + 1).to_string();
        let port = peer.rsplit_once(':').expect("ip:port").1;
        let out = std::process::Command::new(bin_dir().join("waypost"))
            .args(["cert", "--node", &node, "--ip", ip, "--peer-port", port])
            .arg("--data-dir")
            .arg(dir)
            .output()
            .expect("waypost cert runs");
        assert!(
            out.status.success(),
            "waypost cert: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tls = String::from_utf8(out.stdout).expect("UTF-8 config lines");
        let addr = format!("{ip}:{}", free_port(ip));
        let config = dir.join(format!("origin{node}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\ndata_dir = \"{}\"\ntoken = \"{token}\"\n{tls}\n\
                 [cluster]\nnode_id = {node}\nmembers = [{members}]\n",
                dir.join(format!("origin{node}")).display(),
            ),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
        regions.push(OriginRegion { addr, config });
    }
    let ca_file = dir.join("tls").join("ca.pem");
    let procs = start_origins(&regions);
    let client = https_client(&ca_file);
    let deadline = Instant::now() + Duration::from_secs(30);
    for r in &regions {
        let url = format!("https://{}/healthz", r.addr);
        while !client
            .get(&url)
            .send()
            .is_ok_and(|resp| resp.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "{url} is not healthy within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (regions, procs, ca_file)
}

/// A blocking client that trusts the CA in `ca_file` (and no proxy).
pub fn https_client(ca_file: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca_file).unwrap_or_else(|e| panic!("{}: {e}", ca_file.display()));
    reqwest::blocking::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

/// One origin process per region, started on its config.
fn start_origins(regions: &[OriginRegion]) -> Vec<Proc> {
    regions
        .iter()
        .map(|r| {
            let config = r.config.to_str().expect("UTF-8 path");
            Proc::start("origin", &["--config", config], 1).expect("the origin starts")
        })
        .collect()
}

/// A free address on each of `ips`, and the `[cluster] members` entries
/// that list them as nodes 1, 2 and 3.
fn cluster_addrs(ips: [&str; 3]) -> (Vec<String>, String) {
    let addrs: Vec<String> = ips
        .iter()
        .map(|ip| format!("{ip}:{}", free_port(ip)))
        .collect();
    let members: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ id = {}, addr = \"{a}\" }}", i + 1))
        .collect();
    (addrs, members.join(", "))
}

/// Writes the configs of three origin regions that list each other as one
/// Raft group: region N listens on `ips[N-1]` (a free port) and keeps its
/// data under `dir/originN`. Starting them is the caller's business.
pub fn write_origin_cluster(dir: &Path, ips: [&str; 3], token: &str) -> Vec<OriginRegion> {
    let (addrs, members) = cluster_addrs(ips);
    addrs
        .into_iter()
        .enumerate()
        .map(|(i, addr)| {
            let config = dir.join(format!("origin{}.toml", i + 1));
            std::fs::write(
                &config,
                format!(
                    "listen = \"{addr}\"\ndata_dir = \"{}\"\ntoken = \"{token}\"\n\
                     [cluster]\nnode_id = {}\nmembers = [{members}]\n",
                    dir.join(format!("origin{}", i + 1)).display(),
                    i + 1,
                ),
            )
            .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
            OriginRegion { addr, config }
        })
        .collect()
}
