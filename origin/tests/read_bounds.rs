//! Reads are bounded: a KV listing and an /events page stop at a byte
//! budget and say where to resume, and concurrent strong reads and health
//! checks share read-index rounds instead of one round trip each.

mod common;

use std::collections::BTreeSet;

use common::cluster::Cluster;
use common::{Origin, TOKEN};
use futures::future::join_all;
use reqwest::StatusCode;

const PAGE: usize = 4 * 1024 * 1024;

#[tokio::test]
async fn kv_listings_are_cut_by_bytes_and_resume_after_the_last_key() {
    let o = Origin::start().await;
    // 512 KiB of control characters is 3 MiB of escaped JSON.
    let value = "\u{1}".repeat(512 * 1024);
    for key in ["a", "b", "c"] {
        let resp = o
            .put(&format!("/kv/big/{key}"), value.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    for _ in 0..10 {
        let resp = o
            .get(&format!("/kv/big?after={after}"))
            .send()
            .await
            .unwrap();
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.len() <= PAGE, "a page of {} bytes", bytes.len());
        let page: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for e in page["entries"].as_array().unwrap() {
            assert_eq!(e["value"].as_str().unwrap().len(), value.len());
            seen.push(e["key"].as_str().unwrap().to_string());
        }
        if !page["truncated"].as_bool().unwrap() {
            break;
        }
        after = seen.last().unwrap().clone();
    }
    assert_eq!(seen, ["a", "b", "c"]);
}

#[tokio::test]
async fn event_pages_are_cut_by_bytes() {
    let o = Origin::start().await;
    let path = format!("/{}", "p".repeat(7999));
    for _ in 0..6 {
        let purge = serde_json::json!({ "paths": vec![path.clone(); 110] });
        let resp = o
            .client
            .post(o.url("/purge"))
            .bearer_auth(TOKEN)
            .json(&purge)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    let mut seqs = Vec::new();
    let mut after = 0;
    while seqs.len() < 6 {
        let resp = o
            .get(&format!("/events?after={after}"))
            .send()
            .await
            .unwrap();
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.len() <= PAGE, "a page of {} bytes", bytes.len());
        let page: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let events = page["events"].as_array().unwrap();
        assert!(
            !events.is_empty() && events.len() < 6,
            "{} events",
            events.len()
        );
        for e in events {
            seqs.push(e["seq"].as_u64().unwrap());
        }
        after = *seqs.last().unwrap();
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
}

/// GETs on `/internal/*` the leader answered: read-index requests from
/// followers (no blob is fetched in this test).
async fn internal_gets(c: &Cluster, leader: usize) -> u64 {
    let metrics = c.metrics(leader).await;
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("origin_http_requests_total{")
                && l.contains("method=\"GET\"")
                && l.contains("route=\"internal\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_strong_reads_and_health_checks_share_read_index_rounds() {
    const READS: usize = 64;
    const HEALTH: usize = 16;
    let c = Cluster::start(3).await;
    let leader = c
        .wait_for_leader(None, std::time::Duration::from_secs(10))
        .await;
    let follower = (leader + 1) % 3;
    let resp = c.put_kv(leader, "n", "k", "v").await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let before = internal_gets(&c, leader).await;
    let rounds_before = c.server(follower).replica().read_index_rounds();

    let strong = c.url(follower, "/kv/n/k?consistency=strong");
    let health = c.url(follower, "/healthz");
    let urls = (0..READS)
        .map(|_| strong.clone())
        .chain((0..HEALTH).map(|_| health.clone()));
    let statuses = join_all(urls.map(|url| {
        let client = c.client.clone();
        async move { client.get(url).send().await.unwrap().status() }
    }))
    .await;
    let distinct: BTreeSet<_> = statuses.iter().collect();
    assert_eq!(distinct, BTreeSet::from([&StatusCode::OK]), "{statuses:?}");

    let rounds = c.server(follower).replica().read_index_rounds() - rounds_before;
    let asked = internal_gets(&c, leader).await - before;
    let readers = (READS + HEALTH) as u64;
    assert!(
        rounds <= readers / 4,
        "{rounds} rounds for {readers} readers"
    );
    assert!(
        asked <= rounds,
        "the leader was asked {asked} times for {rounds} rounds"
    );
    c.shutdown().await;
}
