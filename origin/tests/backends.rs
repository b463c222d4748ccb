//! One asset battery run against every blob backend: the local file system
//! and a real S3-compatible server (s3s-fs, started here as a process).
//! Without the s3s-fs binary the S3 run is skipped with a message locally;
//! under CI (`CI` set) its absence is a failure, since `.ci/run` installs it.

mod common;

use common::{Origin, header};
use origin::config::{S3Config, StorageConfig};
use reqwest::StatusCode;
use waypost_e2e::s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};

/// The asset API's behaviour that depends on the blob store.
async fn battery(o: &Origin) {
    let resp = o
        .put("/assets/b/hello.txt", "hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let etag = header(&resp, "etag").to_string();

    let resp = o.get("/assets/b/hello.txt").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "etag"), etag);
    assert_eq!(resp.text().await.unwrap(), "hello world");

    let resp = o
        .client
        .head(o.url("/assets/b/hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "content-length"), "11");

    let resp = o
        .get("/assets/b/hello.txt")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    let resp = o
        .get("/assets/b/hello.txt")
        .header("range", "bytes=6-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.text().await.unwrap(), "world");

    // Same bytes again: content addressing makes the rewrite harmless.
    let resp = o
        .put("/assets/b/hello.txt", "hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "etag"), etag);

    // Larger than one multipart chunk (5 MiB), so the upload has parts.
    let big: Vec<u8> = (0..6 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let resp = o
        .put("/assets/b/big.bin", big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let got = o
        .get("/assets/b/big.bin")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got == big, "large asset round trip differs");

    let resp = o
        .client
        .delete(o.url("/assets/b/hello.txt"))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        o.get("/assets/b/hello.txt").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_disk_backend() {
    let o = Origin::start().await;
    battery(&o).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_against_s3s_fs() {
    let Some(s3) = S3Server::start("s3_backend_against_s3s_fs") else {
        return;
    };
    let o = Origin::start_with(|c| {
        c.storage = StorageConfig::S3(S3Config {
            bucket: BUCKET.into(),
            endpoint: Some(s3.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            prefix: Some("region-1".into()),
        });
    })
    .await;
    battery(&o).await;
    // The blobs really are in the bucket, under the prefix.
    let stored = s3
        .bucket_dir()
        .join("region-1")
        .join("blobs")
        .join("sha256");
    assert!(
        std::fs::read_dir(&stored).unwrap().count() >= 2,
        "{stored:?}"
    );
}
