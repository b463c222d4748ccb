//! The plugin registry: a version stored on one region is announced in the
//! change feed and served, byte for byte, by every region.

mod common;

use common::TOKEN;
use common::cluster::Cluster;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn wasm(payload: &str) -> Vec<u8> {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend(payload.as_bytes().repeat(1000));
    bytes
}

async fn put(c: &Cluster, region: usize, name: &str, body: Vec<u8>) -> reqwest::Response {
    c.client
        .put(c.url(region, &format!("/plugins/{name}")))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Waits (long-poll) on `region`'s feed for the event after `after`.
async fn event_after(c: &Cluster, region: usize, after: u64) -> Value {
    let page: Value = c
        .client
        .get(c.url(region, &format!("/events?after={after}&wait=10")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["events"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_is_announced_and_served_everywhere() {
    let c = Cluster::start(3).await;
    let v1 = wasm("one");
    let sha1 = hex::encode(Sha256::digest(&v1));
    let resp = put(&c, 0, "hello", v1.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored: Value = resp.json().await.unwrap();
    assert_eq!(stored["sha256"], sha1);
    let seq = stored["seq"].as_u64().unwrap();

    // The edge's path: see the event on its region's feed, then GET there.
    let event = event_after(&c, 2, seq - 1).await;
    assert_eq!(
        event,
        json!({"seq": seq, "type": "plugin_version", "name": "hello", "sha256": sha1, "size": v1.len()})
    );
    let resp = c
        .client
        .get(c.url(2, "/plugins/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["etag"], format!("\"{sha1}\"").as_str());
    assert_eq!(resp.headers()["x-waypost-plugin-sha256"], sha1.as_str());
    assert_eq!(resp.headers()["content-type"], "application/wasm");
    assert_eq!(resp.bytes().await.unwrap(), v1);
    let resp = c
        .client
        .get(c.url(2, "/plugins/hello"))
        .header("if-none-match", format!("\"{sha1}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    // A new version replaces it everywhere.
    let v2 = wasm("two");
    let sha2 = hex::encode(Sha256::digest(&v2));
    let resp = put(&c, 1, "hello", v2.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let event = event_after(&c, 2, seq).await;
    assert_eq!(event["sha256"], sha2);
    let resp = c
        .client
        .get(c.url(2, "/plugins/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), v2);
    let geo: Value = put(&c, 0, "geo", wasm("geo")).await.json().await.unwrap();
    event_after(&c, 0, geo["seq"].as_u64().unwrap() - 1).await;
    let list: Value = c
        .client
        .get(c.url(0, "/plugins"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["hello"], sha2);
    assert_eq!(list.as_object().unwrap().len(), 2);

    let resp = c
        .client
        .delete(c.url(2, "/plugins/hello"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let deleted_seq: u64 = resp.headers()["x-waypost-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let event = event_after(&c, 0, deleted_seq - 1).await;
    assert_eq!(
        event,
        json!({"seq": deleted_seq, "type": "plugin_deleted", "name": "hello"})
    );
    let resp = c
        .client
        .get(c.url(0, "/plugins/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_names_bodies_and_tokens_are_refused_with_reasons() {
    let c = Cluster::start(3).await;
    for name in ["Hello", "a_b", "-a", &"x".repeat(65)] {
        let resp = put(&c, 0, name, wasm("x")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{name}");
        let reason = resp.text().await.unwrap();
        assert!(reason.contains("plugin name"), "{reason}");
    }
    let resp = put(&c, 0, "text", b"hello, not wasm".to_vec()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("WebAssembly"));
    let resp = c
        .client
        .put(c.url(0, "/plugins/hello"))
        .body(wasm("x"))
        .send()
        .await
        .unwrap();
    // The harness client's read token is valid but cannot publish.
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = c
        .client
        .delete(c.url(0, "/plugins/nothing"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let list: Value = c
        .client
        .get(c.url(0, "/plugins"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!({}), "refused uploads left a registry entry");
    c.shutdown().await;
}
