//! One asset battery run against every blob backend: the local file system
//! and a real S3-compatible server (s3s-fs, started here as a process).
//! Without the s3s-fs binary the S3 run is skipped with a message locally;
//! under CI (`CI` set) its absence is a failure, since `.ci/run` installs it.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Origin, header};
use origin::config::{S3Config, StorageConfig};
use reqwest::StatusCode;

const ACCESS_KEY: &str = "waypost-test";
const SECRET_KEY: &str = "waypost-test-secret";
const BUCKET: &str = "waypost";

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

/// An s3s-fs process serving a temporary directory; killed on drop.
struct S3Server {
    child: Child,
    endpoint: String,
    _root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3s_fs_binary() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let installed = home.join("bin").join("s3s-fs");
    if installed.exists() {
        return Some(installed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.exists())
    })
}

fn start_s3s_fs(binary: PathBuf) -> S3Server {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    // s3s-fs takes a fixed port: reserve a free one, release it, pass it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting s3s-fs");
    // Ready when it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "s3s-fs did not start listening within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        _root: root,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_against_s3s_fs() {
    let Some(binary) = s3s_fs_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "s3s-fs is not installed but CI must run the S3 backend test (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED s3_backend_against_s3s_fs: s3s-fs not found; install it with \
             `cargo install s3s-fs --version 0.14.1 --features binary --locked`"
        );
        return;
    };
    let s3 = start_s3s_fs(binary);
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
        ._root
        .path()
        .join(BUCKET)
        .join("region-1")
        .join("blobs")
        .join("sha256");
    assert!(
        std::fs::read_dir(&stored).unwrap().count() >= 2,
        "{stored:?}"
    );
}
