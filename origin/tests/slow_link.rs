//! One large entry over a slow link between regions still commits, and
//! what is written after it too: the batch that cannot cross the link
//! within one AppendEntries attempt (the heartbeat interval) is not resent
//! from the start forever.
//!
//! The regions reach each other only through proxies that carry
//! [`RATE`] bytes a second each way per connection, so a 1 MiB KV value
//! takes about two seconds to reach a follower, over ten times the
//! 150 ms an attempt gets.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{Adjust, Cluster};
use origin::Config;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// The link's speed, each way, per connection.
const RATE: u64 = 512 * 1024;

/// A TCP proxy in front of one region's peer listener, at [`RATE`]. The
/// region it leads to is known only once that region's config is built,
/// so connections wait for `target`.
struct SlowLink {
    addr: SocketAddr,
    target: watch::Sender<Option<SocketAddr>>,
}

async fn slow_link(ip: &str) -> SlowLink {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (target, rx) = watch::channel(None);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let Ok(to) = rx.wait_for(Option::is_some).await.map(|t| t.unwrap()) else {
                    return;
                };
                let Ok(outbound) = TcpStream::connect(to).await else {
                    return;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::join!(throttled(in_read, out_write), throttled(out_read, in_write));
            });
        }
    });
    SlowLink { addr, target }
}

/// Copies `from` to `to` at [`RATE`] (no burst after an idle spell).
async fn throttled(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let mut buf = vec![0; 16 * 1024];
    let mut next = Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        next = next.max(Instant::now()) + Duration::from_secs_f64(n as f64 / RATE as f64);
        tokio::time::sleep_until(next).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_entry_over_a_slow_link_commits_and_so_does_what_follows() {
    let mut links = Vec::new();
    for i in 0..3 {
        links.push(slow_link(&format!("127.0.0.{}", 41 + i)).await);
    }
    let links = Arc::new(links);
    let members = links
        .iter()
        .enumerate()
        .map(|(j, l)| (j as u64 + 1, l.addr.to_string()))
        .collect();
    let through_links = links.clone();
    let adjust: Adjust = Arc::new(move |config: &mut Config| {
        let cluster = config.cluster.as_mut().expect("a cluster");
        let peer = config.peer.as_ref().expect("a peer listener").listen;
        through_links[cluster.node_id as usize - 1]
            .target
            .send_replace(Some(peer));
        cluster.members.clone_from(&members);
    });
    let c = Cluster::start_with(3, true, Some(adjust)).await;
    let leader = c.leader().expect("a leader");

    // 1 MiB of control characters: ~6 MiB as escaped JSON, 1 MiB in the
    // log's CBOR; either way far more than one attempt can carry.
    let big = "\u{1}".repeat(1024 * 1024);
    let resp = c.put_kv(leader, "slow", "big", &big).await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "the large write commits: {}",
        resp.text().await.unwrap()
    );
    let resp = c.put_kv(leader, "slow", "after", "small").await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "and so does the next");

    // Every region gets both, through the slow links.
    let applied = c
        .server(leader)
        .replica()
        .raft
        .metrics()
        .borrow()
        .last_applied
        .expect("applied")
        .index;
    for i in 0..3 {
        c.wait_applied(i, applied, Duration::from_secs(30)).await;
        let value = c
            .client
            .get(c.url(i, "/kv/slow/big"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(value == big, "region {} holds the whole value", i + 1);
    }
    drop(links);
    c.shutdown().await;
}
