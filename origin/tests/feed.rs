//! The change feed: ordered, resumable after a disconnect with no gaps or
//! duplicates, and long-poll that wakes on the next commit.

mod common;

use std::time::Duration;

use common::TOKEN;
use common::cluster::Cluster;
use reqwest::StatusCode;
use serde_json::Value;

async fn page(c: &Cluster, region: usize, query: &str) -> Value {
    let resp = c
        .client
        .get(c.url(region, &format!("/events?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn seqs(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn feed_resumes_exactly_after_a_disconnect() {
    let c = Cluster::start(3).await;
    for i in 0..5 {
        c.put_kv(i % 3, "ns", &format!("k{i}"), "v").await.unwrap();
    }
    let resp = c
        .client
        .post(c.url(1, "/purge"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "surrogate_keys": ["brand"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let purge_seq = resp.json::<Value>().await.unwrap()["seq"].as_u64().unwrap();
    assert_eq!(purge_seq, 6);

    // A subscriber reads two events, "disconnects", and resumes on another
    // region from the last sequence number it processed.
    let first = page(&c, 0, "after=0&limit=2&wait=5").await;
    assert_eq!(seqs(&first), [1, 2]);
    assert_eq!(first["events"][0]["type"], "kv_put");
    // Region 2 may not have applied everything yet: like a real
    // subscriber, keep polling from the last event received.
    let mut rest = Vec::new();
    while rest.len() < 4 {
        let after = rest
            .last()
            .map_or(2, |e: &Value| e["seq"].as_u64().unwrap());
        let next = page(&c, 2, &format!("after={after}&wait=5")).await;
        let events = next["events"].as_array().unwrap().clone();
        assert!(!events.is_empty(), "no event after {after} within the wait");
        rest.extend(events);
    }
    let rest_seqs: Vec<u64> = rest.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(rest_seqs, [3, 4, 5, 6]);
    assert_eq!(rest[3]["type"], "purge");
    assert_eq!(rest[3]["surrogate_keys"][0], "brand");

    // Long-poll: an empty wait is answered by the next commit.
    let waiter = {
        let url = c.url(2, "/events?after=6&wait=30");
        let client = c.client.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let resp = c
        .client
        .put(c.url(0, "/assets/x.txt"))
        .bearer_auth(TOKEN)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let woke = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&woke), [7]);
    assert_eq!(woke["events"][0]["type"], "asset_put");
    assert_eq!(woke["events"][0]["path"], "x.txt");

    // Nothing new: an immediate answer is empty, not an error.
    assert!(seqs(&page(&c, 1, "after=7").await).is_empty());
    let resp = c
        .client
        .get(c.url(0, "/events?after=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    c.shutdown().await;
}
