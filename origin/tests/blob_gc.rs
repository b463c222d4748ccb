//! Blob collection: a blob no asset or plugin version points at, and an
//! abandoned upload, are deleted once older than the grace period; a blob
//! something points at, and a young one, never are.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Origin, TOKEN};
use origin::config::BlobGc;
use reqwest::StatusCode;

fn collecting(grace: Duration) -> impl FnOnce(&mut origin::Config) {
    move |c| {
        c.blob_gc = BlobGc {
            interval: Some(Duration::from_millis(100)),
            grace,
        }
    }
}

/// Uploads `body` as `/assets/{name}` and returns its blob's file.
async fn put_asset(o: &Origin, name: &str, body: &str) -> PathBuf {
    let r = o
        .put(&format!("/assets/{name}"), body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let etag = r.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_string();
    o.data_dir().join("blobs/sha256").join(etag)
}

async fn put_plugin(o: &Origin, name: &str) -> PathBuf {
    let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
    wasm.extend(b"plugin".repeat(100));
    let r = o
        .client
        .put(o.url(&format!("/plugins/{name}")))
        .bearer_auth(TOKEN)
        .body(wasm.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
    o.data_dir().join("blobs/sha256").join(sha)
}

/// An upload that never completed, as a crash mid-upload leaves it.
fn abandoned_upload(o: &Origin) -> PathBuf {
    let dir = o.data_dir().join("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("0123456789abcdef0123456789abcdef");
    std::fs::write(&file, b"half an upload").unwrap();
    file
}

async fn counter(o: &Origin, line: &str) -> u64 {
    let text = o
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn exists(file: &Path) -> bool {
    file.exists()
}

#[tokio::test]
async fn unreferenced_blobs_younger_than_the_grace_stay() {
    let o = Origin::start_with(collecting(Duration::from_secs(3600))).await;
    let old = put_asset(&o, "app.js", "v1").await;
    put_asset(&o, "app.js", "v2").await;
    let upload = abandoned_upload(&o);
    let runs = "origin_blob_gc_runs_total{result=\"ok\"}";
    wait_for("two collection passes", async || {
        counter(&o, runs).await >= 2
    })
    .await;
    assert!(exists(&old), "a young unreferenced blob was collected");
    assert!(exists(&upload), "a young upload was collected");
    assert_eq!(counter(&o, "origin_blob_gc_deleted_total").await, 0);
}

#[tokio::test]
async fn old_unreferenced_blobs_and_uploads_are_collected_and_nothing_else() {
    let o = Origin::start_with(collecting(Duration::from_secs(1))).await;
    let replaced = put_asset(&o, "app.js", "v1").await;
    let current = put_asset(&o, "app.js", "v2").await;
    let kept = put_asset(&o, "logo.svg", "<svg/>").await;
    let deleted_asset = put_asset(&o, "gone.txt", "bye").await;
    let r = o
        .client
        .delete(o.url("/assets/gone.txt"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let plugin = put_plugin(&o, "hello").await;
    let upload = abandoned_upload(&o);

    wait_for("the replaced and deleted blobs to go", async || {
        !exists(&replaced) && !exists(&deleted_asset) && !exists(&upload)
    })
    .await;
    for file in [&current, &kept, &plugin] {
        assert!(exists(file), "{} was collected", file.display());
    }
    let r = o.get("/assets/app.js").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "v2");
    assert!(counter(&o, "origin_blob_gc_deleted_total").await >= 3);
    assert!(counter(&o, "origin_blob_gc_freed_bytes_total").await >= 5);
}

#[tokio::test]
async fn a_large_queued_body_stays_until_its_message_is_acked() {
    let o = Origin::start_with(collecting(Duration::from_secs(1))).await;
    let r = o
        .client
        .put(o.url("/queues/big"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body = "queued ".repeat(20_000);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes()));
    let file = o.data_dir().join("blobs/sha256").join(&sha);
    let r = o
        .client
        .post(o.url("/queues/big/messages"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"messages": [{"body": body}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(exists(&file), "the body is a blob at {}", file.display());
    // A blob left unreferenced at the same time is collected once past
    // the grace period; the queued message's is not: a message holds it.
    let control = put_asset(&o, "control.txt", "v1").await;
    put_asset(&o, "control.txt", "v2").await;
    wait_for("the unreferenced control blob to go", async || {
        !exists(&control)
    })
    .await;
    assert!(exists(&file), "a queued message's blob was collected");

    let leased: serde_json::Value = o
        .client
        .post(o.url("/queues/big/lease"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"max": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(leased["messages"][0]["body"], body.as_str());
    let receipt = leased["messages"][0]["receipt"].clone();
    let r = o
        .client
        .post(o.url("/queues/big/ack"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"receipts": [receipt]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    wait_for("the acked message's blob to go", async || !exists(&file)).await;
}
