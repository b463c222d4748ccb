//! Issue 9 item 6: clients that stop reading cannot hold the edge. An
//! HTTP/2 client can open streams and keep their flow-control window at
//! zero: its socket stays writable (so no socket write timer fires), and
//! every such stream would keep what serves it (a plugin instance and its
//! concurrency slot, a fill) for as long as the client likes.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{ScriptedOrigin, client, plugin_edge_toml, plugin_wasm, start_edge_with, url};

/// Streams per attacking connection; two connections make the 200.
const STREAMS: usize = 100;

/// An edge whose default site runs `hello` and whose `/huge/` site runs a
/// plugin streaming 1 GiB, with a `write_timeout` of `write_timeout`.
fn edge_toml(origin: SocketAddr, dir: &std::path::Path, write_timeout: &str) -> String {
    let (hello, huge) = (plugin_wasm("hello"), plugin_wasm("fault-huge"));
    let mut toml = plugin_edge_toml(
        origin,
        dir,
        &[("hello", &hello), ("huge", &huge)],
        &["hello"],
        "",
        &format!("[limits]\nwrite_timeout = \"{write_timeout}\"\n"),
    );
    toml = support::grant(&toml, "huge", "max_concurrency = 8\nmax_queue = 256");
    toml.push_str("[[sites]]\npath_prefix = \"/huge/\"\npool = \"main\"\nplugins = [\"huge\"]\n");
    toml
}

/// An HTTP/2 connection whose streams start with a zero window: the edge
/// may send response heads but not one byte of any body.
struct ZeroWindowClient {
    driver: tokio::task::JoinHandle<Result<(), h2::Error>>,
    /// The open streams' bodies, never read and never given capacity.
    held: Vec<h2::RecvStream>,
}

impl ZeroWindowClient {
    async fn open(addr: SocketAddr, path: &str, streams: usize) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, Bytes>(tcp)
            .await
            .expect("h2c handshake with the edge");
        let driver = tokio::spawn(conn);
        let mut send = send.ready().await.unwrap();
        let mut pending = Vec::new();
        for i in 0..streams {
            let req = http::Request::get(format!("http://127.0.0.1{path}{i}"))
                .body(())
                .unwrap();
            let (response, _) = send.send_request(req, true).unwrap();
            pending.push(response);
            send = send.ready().await.unwrap();
        }
        let mut held = Vec::new();
        for response in pending {
            let response = response.await.expect("a response head arrives");
            assert_eq!(response.status(), 200);
            held.push(response.into_body());
        }
        Self { driver, held }
    }
}

async fn hello_answers(edge: &edge_node::RunningServer, n: usize) {
    let c = client();
    for i in 0..n {
        let r = c
            .get(url(edge, &format!("/other-client/{i}")))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} of another client: {e}"));
        assert_eq!(r.status(), 200, "request {i} of another client");
        assert!(r.text().await.unwrap().starts_with("Hello from Waypost!"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_h2_streams_do_not_stop_other_clients_plugin_requests() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(origin.addr, dir.path(), "30s"), dir.path()).await;
    let addr = edge.http_addr().unwrap();
    // 100 streams parked on the plugin that would stream 1 GiB (8 run,
    // the rest queue) and 100 on the plugin every other client uses.
    let huge = ZeroWindowClient::open(addr, "/huge/", STREAMS).await;
    let hello = ZeroWindowClient::open(addr, "/parked/", STREAMS).await;
    assert_eq!(huge.held.len() + hello.held.len(), 2 * STREAMS);
    hello_answers(&edge, 20).await;
    assert!(!huge.driver.is_finished() && !hello.driver.is_finished());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_held_at_a_zero_window_is_cut_after_write_timeout() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(origin.addr, dir.path(), "1s"), dir.path()).await;
    let addr = edge.http_addr().unwrap();
    let started = Instant::now();
    let mut parked = ZeroWindowClient::open(addr, "/parked/", 10).await;
    // The edge ends the connection: the driver finishes (with an error or
    // a GOAWAY), and the held bodies end without their data.
    let ended = tokio::time::timeout(Duration::from_secs(20), &mut parked.driver).await;
    assert!(
        ended.is_ok(),
        "the zero-window connection was still open after {:?}",
        started.elapsed()
    );
    for body in &mut parked.held {
        let data = tokio::time::timeout(Duration::from_secs(5), body.data())
            .await
            .expect("a held body ends once its connection is cut");
        assert!(
            !matches!(data, Some(Ok(ref d)) if !d.is_empty()),
            "a zero-window stream received data: {data:?}"
        );
    }
    let metrics = client()
        .get(format!("http://{}/metrics", edge.admin_addr()))
        .bearer_auth("test-admin-token-0123456789")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hits: u64 = metrics
        .lines()
        .find(|l| l.contains("listener_limit_hits") && l.contains("\"write_timeout\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(hits >= 1, "no write_timeout counted:\n{metrics}");
    // A client that reads is unaffected by the same limit.
    hello_answers(&edge, 3).await;
}
