//! 5,000 slowloris connections (request heads that never finish) against
//! two of three regions' public ports do not stop writes or elections.
//!
//! The process gets a fixed budget of 8,192 file descriptors, shared by
//! the attacking sockets and the three in-process regions, like a real
//! origin under its `ulimit -n`. Each public listener holds at most
//! `max_connections` (500 here) and sheds the rest at once, and the
//! regions talk to each other on peer listeners the flood cannot fill.
//! Without those limits (one shared port, no cap) the 5,000 accepted
//! connections plus the 5,000 attacking ones exhaust the budget: accepts
//! and the regions' own connects fail with EMFILE and neither the
//! forwarded write nor the election below gets through.
//!
//! Bounded in time: the flood is opened in about a second and the test
//! ends well inside the 10 s header timeout, so the cap, not the timer,
//! is what holds the connections down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster::Cluster;
use futures::future::join_all;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const FD_BUDGET: u64 = 8192;
const SLOW_CONNECTIONS: usize = 5000;
const PUBLIC_CAP: usize = 500;

/// Opens `count` connections to `addr`, each sending the start of a
/// request head and nothing more; returns the ones that connected.
async fn slowloris(addr: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    let opened = join_all((0..count).map(|_| async move {
        let mut conn = TcpStream::connect(addr).await.ok()?;
        // The server may already have shed it; either way it stays open here.
        let _ = conn
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await;
        Some(conn)
    }))
    .await;
    opened.into_iter().flatten().collect()
}

/// A KV write through region `i`, retried on 503 until `limit`.
async fn write(c: &Cluster, i: usize, key: &str, limit: Duration) -> StatusCode {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let status = c.put_kv(i, "flood", key, "v").await.map(|r| r.status());
        match status {
            Ok(s) if s.is_success() => return s,
            _ if tokio::time::Instant::now() >= deadline => {
                return status.map_or(StatusCode::GATEWAY_TIMEOUT, |s| s);
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_slowloris_connections_do_not_stop_writes_or_elections() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= FD_BUDGET,
        "this test needs a hard RLIMIT_NOFILE of at least {FD_BUDGET}, have {hard}"
    );
    setrlimit(Resource::RLIMIT_NOFILE, FD_BUDGET, hard).unwrap();

    let adjust = Arc::new(|c: &mut origin::Config| c.limits.max_connections = PUBLIC_CAP);
    let mut c = Cluster::start_with(3, true, Some(adjust)).await;
    let leader = c.wait_for_leader(None, Duration::from_secs(10)).await;
    let writer = (leader + 1) % 3;
    let flooded = [leader, (leader + 2) % 3];

    let floods = flooded.map(|i| slowloris(c.addr(i), SLOW_CONNECTIONS / 2));
    let held: Vec<TcpStream> = join_all(floods).await.into_iter().flatten().collect();
    assert!(
        held.len() >= SLOW_CONNECTIONS * 9 / 10,
        "only {} of {SLOW_CONNECTIONS} slow connections opened",
        held.len()
    );

    // A write through the region not under attack is forwarded to the
    // flooded leader over its peer listener.
    let status = write(&c, writer, "during", Duration::from_secs(5)).await;
    assert!(status.is_success(), "write during the flood: {status}");

    // The leader dies; the other flooded region and the writer elect one.
    c.kill(leader).await;
    let new = c
        .wait_for_leader(Some(leader), Duration::from_secs(10))
        .await;
    assert_ne!(new, leader);
    let status = write(&c, writer, "after", Duration::from_secs(5)).await;
    assert!(status.is_success(), "write after the election: {status}");

    // The cap did the work: the surviving flooded region shed everything
    // past it. Its public port answers again once the attackers leave.
    drop(held);
    let survivor = flooded[1];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        if let Ok(resp) = c.client.get(c.url(survivor, "/metrics")).send().await
            && resp.status() == StatusCode::OK
        {
            break resp.text().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics unreachable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rejected: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("origin_connections_rejected_total{listener=\"public\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rejection count: {metrics}"));
    let expected = (SLOW_CONNECTIONS / 2 - PUBLIC_CAP) as u64;
    assert!(
        rejected >= expected,
        "{rejected} rejected, expected {expected}"
    );
    c.shutdown().await;
}
