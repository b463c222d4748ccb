//! Issue 9: the edge's memory stays within `memory_capacity` plus a fixed
//! overhead whatever the object mix. The real `edge-node` binary (its own
//! allocator, its own process, RSS read from /proc) is flooded with many
//! more distinct small objects than fit, with a memory tier only and with a
//! disk tier, and restarted on that disk tier. Scaled down from the issue's
//! 500,000 objects in 64 MiB to keep the suite fast: what is checked is
//! that growth is bounded by the setting, which holds at any scale;
//! `bench/cache_hit.sh` measures bytes per object at full size.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

const CAPACITY_MIB: u64 = 8;
const OBJECTS: usize = 16_000;
/// The fixed overhead beyond an idle edge that load brings: worker and
/// blocking-thread stacks and allocator heaps (the blocking pool is capped
/// at 32 threads; see `edge-node/src/main.rs`). Documented in
/// bench/RESULTS.md.
const FIXED_OVERHEAD: u64 = 24 << 20;
const BODY: usize = 1024;

/// An origin that answers every path with a fresh 1 KiB body.
async fn origin() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    let resp = http::Response::builder()
                        .header("cache-control", "max-age=3600")
                        .header("content-type", "text/plain")
                        .header("etag", "\"0123456789abcdef\"")
                        .body(Full::new(Bytes::from(vec![b'x'; BODY])))
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

struct Edge {
    child: Child,
    http: SocketAddr,
    /// Kept open: the edge prints more lines after the address, and a
    /// closed pipe would end it.
    _stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and reads the address it prints.
fn start(config: &std::path::Path) -> Edge {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-node"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next() {
        let line = line.unwrap();
        if let Some(addr) = line.strip_prefix("edge-node listening on http://") {
            return Edge {
                child,
                http: addr.parse().unwrap(),
                _stdout: lines,
            };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("edge-node exited before listening");
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Requests `/o/{from..to}` over `conns` keep-alive connections.
async fn flood(edge: SocketAddr, from: usize, to: usize) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let conns = 16;
    let mut tasks = Vec::new();
    for c in 0..conns {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = from + c;
            while i < to {
                let r = client
                    .get(format!("http://{edge}/o/{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.bytes().await.unwrap().len(), BODY);
                i += conns;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn config(dir: &std::path::Path, origin: SocketAddr, disk: bool) -> std::path::PathBuf {
    let disk = if disk {
        format!(
            "disk = {{ dir = \"{}\", capacity = \"1GiB\" }}\n",
            dir.join("cache").display()
        )
    } else {
        String::new()
    };
    let toml = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [cache]\nmemory_capacity = \"{CAPACITY_MIB}MiB\"\nmax_memory_object = \"64KiB\"\n{disk}\
         [[pools]]\nname = \"o\"\norigins = [\"{origin}\"]\n[[sites]]\npool = \"o\"\n"
    );
    let path = dir.join("edge.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// RSS may exceed an idle edge's by at most 1.25 × the capacity plus the
/// fixed overhead (the bound).
fn assert_bounded(what: &str, baseline: u64, rss: u64) {
    let cap = CAPACITY_MIB << 20;
    let allowed = baseline + cap * 5 / 4 + FIXED_OVERHEAD;
    eprintln!(
        "{what}: baseline {} KiB, now {} KiB, allowed {} KiB",
        baseline >> 10,
        rss >> 10,
        allowed >> 10
    );
    assert!(
        rss <= allowed,
        "{what}: RSS {} KiB exceeds baseline {} KiB + 1.25 x {CAPACITY_MIB} MiB + the fixed overhead",
        rss >> 10,
        baseline >> 10
    );
}

async fn run(disk: bool) {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin().await;
    let path = config(dir.path(), origin, disk);
    let edge = start(&path);
    flood(edge.http, 0, 500).await;
    let baseline = rss_bytes(edge.child.id());
    let started = Instant::now();
    flood(edge.http, 500, OBJECTS / 2).await;
    let half = rss_bytes(edge.child.id());
    flood(edge.http, OBJECTS / 2, OBJECTS).await;
    let threads = std::fs::read_to_string(format!("/proc/{}/status", edge.child.id()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .unwrap_or_default()
        .to_string();
    eprintln!(
        "{OBJECTS} misses in {:?}; RSS at half {} KiB; {threads}",
        started.elapsed(),
        half >> 10
    );
    let end = rss_bytes(edge.child.id());
    let what = if disk { "disk tier" } else { "memory tier" };
    assert_bounded(what, baseline, end);
    // By half-way the memory tier was full several times over: the second
    // half's objects must cost (almost) nothing more. Not asserted for the
    // disk tier, whose RAM per object (an index entry, ~400 B) is too small
    // at this scale to tell from the malloc arenas of the blocking threads
    // its file I/O starts on demand (26 to 32 threads, up to 10 MiB between
    // runs); flooded with 64,000 objects its RSS levels off at ~73 MiB
    // (2026-12-04), and `assert_bounded` holds it to the bound.
    assert!(
        disk || end <= half + (CAPACITY_MIB << 20) / 2,
        "{what}: RSS grew from {} KiB to {} KiB over objects that did not fit",
        half >> 10,
        end >> 10
    );
    if disk {
        drop(edge);
        let edge = start(&path);
        // The restart scanned the disk tier; serve from it a little.
        flood(edge.http, 0, 100).await;
        assert_bounded(
            "restart on the disk tier",
            baseline,
            rss_bytes(edge.child.id()),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_tier_flood_stays_within_capacity() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_tier_flood_and_restart_stay_within_capacity() {
    run(true).await;
}
