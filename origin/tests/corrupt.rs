//! A damaged local blob is never served as a clean 200: a wrong-size copy
//! is refetched from a peer before answering, a same-size copy with flipped
//! bytes aborts the download and is refetched on the next read. A damaged
//! copy is moved to `quarantine/`, and deleted only once a good one is back:
//! with a bucket shared by every region it may be the only copy there is.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::TOKEN;
use common::cluster::Cluster;
use reqwest::StatusCode;

/// Uploads `body` to region 0, reads it once on region 1 (so a peer holds
/// a copy) and returns the path of region 0's blob file.
async fn upload_and_replicate(c: &Cluster, name: &str, body: &[u8]) -> PathBuf {
    let resp = c
        .client
        .put(c.url(0, &format!("/assets/{name}")))
        .bearer_auth(TOKEN)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let etag = resp.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_string();
    let resp = c
        .client
        .get(c.url(1, &format!("/assets/{name}?consistency=strong")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), body);
    c.data_dir(0).join("blobs/sha256").join(etag)
}

fn body(seed: u8) -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// The files under region `i`'s `quarantine/`.
fn quarantined(c: &Cluster, i: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![c.data_dir(i).join("quarantine")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}

async fn wait_until_gone(file: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while file.exists() {
        assert!(Instant::now() < deadline, "damaged copy was not removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flipped_bytes_abort_the_download_then_get_refetched() {
    let c = Cluster::start(3).await;
    let good = body(1);
    let file = upload_and_replicate(&c, "flip.bin", &good).await;
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 0xff;
    bytes[250_000] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let resp = c
        .client
        .get(c.url(0, "/assets/flip.bin?consistency=strong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let received = resp.bytes().await;
    assert!(
        received.is_err(),
        "a corrupt copy was delivered as a complete response"
    );
    let metrics = c.metrics(0).await;
    assert!(
        metrics.contains("origin_blob_corrupt_total{kind=\"hash\"} 1"),
        "{metrics}"
    );

    wait_until_gone(&file).await;
    let resp = c
        .client
        .get(c.url(0, "/assets/flip.bin?consistency=strong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), good);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        good,
        "the copy was not repaired"
    );
    let metrics = c.metrics(0).await;
    assert!(
        metrics.contains("origin_blob_peer_fetches_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncated_copy_is_refetched_before_answering() {
    let c = Cluster::start(3).await;
    let good = body(2);
    let file = upload_and_replicate(&c, "short.bin", &good).await;
    std::fs::write(&file, &good[..good.len() / 2]).unwrap();

    let resp = c
        .client
        .get(c.url(0, "/assets/short.bin?consistency=strong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), good);
    assert_eq!(std::fs::read(&file).unwrap(), good);
    assert!(
        quarantined(&c, 0).is_empty(),
        "the damaged copy outlived the repair"
    );
    let metrics = c.metrics(0).await;
    assert!(
        metrics.contains("origin_blob_corrupt_total{kind=\"size\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("origin_blob_peer_fetches_total{result=\"ok\"} 1"),
        "{metrics}"
    );

    // A range read of a truncated copy is caught the same way.
    std::fs::write(&file, &good[..10]).unwrap();
    let resp = c
        .client
        .get(c.url(0, "/assets/short.bin"))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap(), good[100..200]);
    c.shutdown().await;
}

/// One region, so no peer holds another copy (as with a bucket every region
/// shares): the damaged copy is kept under `quarantine/`, not deleted, and
/// the read fails with a reason instead of serving it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_copy_is_quarantined_not_deleted() {
    let c = Cluster::start(1).await;
    let good = body(3);
    let resp = c
        .client
        .put(c.url(0, "/assets/only.bin"))
        .bearer_auth(TOKEN)
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let etag = resp.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_string();
    let file = c.data_dir(0).join("blobs/sha256").join(&etag);
    std::fs::write(&file, &good[..1000]).unwrap();

    let resp = c
        .client
        .get(c.url(0, "/assets/only.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let kept = quarantined(&c, 0);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].starts_with(c.data_dir(0).join("quarantine/sha256").join(&etag)));
    assert_eq!(std::fs::read(&kept[0]).unwrap(), good[..1000]);
    c.shutdown().await;
}
