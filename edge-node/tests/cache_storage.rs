//! Bodies: ranges from cache, large objects streaming with bounded memory,
//! the disk tier across a restart, and origins that die or stall mid-body.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use support::*;

#[tokio::test]
async fn range_requests_are_served_from_the_cached_object() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/r", |_, _| {
        resp(
            200,
            "0123456789",
            &[("cache-control", "max-age=600"), ("etag", "\"d\"")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    let r = c
        .get(url(&edge, "/r"))
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers().get("content-range").unwrap(), "bytes 2-4/10");
    assert_eq!(r.text().await.unwrap(), "234");
    let r = c
        .get(url(&edge, "/r"))
        .header("range", "bytes=-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "789");
    let r = c
        .get(url(&edge, "/r"))
        .header("range", "bytes=50-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers().get("content-range").unwrap(), "bytes */10");
    let r = c
        .get(url(&edge, "/r"))
        .header("range", "bytes=0-1")
        .header("if-range", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a failed If-Range gets the whole representation"
    );
    assert_eq!(origin.hits("/r"), 1, "the origin never saw a range request");
    assert!(origin.seen("/r")[0].headers.get("range").is_none());
}

#[tokio::test]
async fn client_conditionals_are_answered_from_cache_with_if_none_match_first() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/c", |_, _| {
        resp(
            200,
            "x",
            &[
                ("cache-control", "max-age=600"),
                ("etag", "\"e\""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    c.get(url(&edge, "/c")).send().await.unwrap();
    let r = c
        .get(url(&edge, "/c"))
        .header("if-none-match", "\"e\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(url(&edge, "/c"))
        .header("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // If-None-Match does not match: If-Modified-Since must be ignored.
    let r = c
        .get(url(&edge, "/c"))
        .header("if-none-match", "\"other\"")
        .header("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(origin.hits("/c"), 1);
}

#[tokio::test]
async fn headers_rules_age_date_connection_and_invalid_expires() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/h", |_, _| {
        resp(
            200,
            "h",
            &[
                ("cache-control", "max-age=600"),
                ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ("age", "100"),
                ("connection", "x-hop"),
                ("x-hop", "secret"),
            ],
        )
    });
    origin.route("/exp", |_, n| {
        resp(200, &format!("v{n}"), &[("expires", "not a date")])
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    c.get(url(&edge, "/h")).send().await.unwrap();
    let r = c.get(url(&edge, "/h")).send().await.unwrap();
    assert!(cache_status(&r).starts_with("waypost; hit"));
    assert_eq!(
        r.headers().get("date").unwrap(),
        "Mon, 01 Jan 2024 00:00:00 GMT",
        "Date is not rewritten"
    );
    let age: u64 = r
        .headers()
        .get("age")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(age >= 100, "incoming Age is honoured: {age}");
    assert!(
        r.headers().get("x-hop").is_none(),
        "fields named in Connection are not stored"
    );
    c.get(url(&edge, "/exp")).send().await.unwrap();
    c.get(url(&edge, "/exp")).send().await.unwrap();
    assert_eq!(
        origin.hits("/exp"),
        2,
        "an invalid Expires means already stale"
    );
}

/// A deterministic 50 MiB body from a fast generator.
fn big_body() -> Vec<u8> {
    let mut v = Vec::with_capacity(50 << 20);
    let mut x: u32 = 1;
    while v.len() < 50 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_object_streams_to_disk_and_back_with_bounded_memory() {
    let origin = ScriptedOrigin::start().await;
    let data = Bytes::from(big_body());
    let expected = data.clone();
    origin.route("/big", move |_, _| {
        let mut r = resp(200, "", &[("cache-control", "max-age=600")]);
        *r.body_mut() = http_body_util::Full::new(data.clone());
        r
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    let before = rss_kib();
    for round in 0..3 {
        let r = c.get(url(&edge, "/big")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let mut stream = r.bytes_stream();
        let mut offset = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            assert_eq!(
                &chunk[..],
                &expected[offset..offset + chunk.len()],
                "round {round} at {offset}"
            );
            offset += chunk.len();
        }
        assert_eq!(offset, expected.len());
    }
    assert_eq!(origin.hits("/big"), 1);
    // The test process holds the origin's copy (50 MiB) already; the edge
    // must not add another copy per request: growth stays well under 50 MiB.
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 40 * 1024,
        "edge memory grew by {grown} KiB serving a 50 MiB object three times"
    );
    let disk_bytes: u64 = walk(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(disk_bytes >= 50 << 20, "the object lives in the disk tier");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Waits until an object is on disk: its meta file appears once complete.
async fn wait_for_meta(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !walk(dir)
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "meta"))
    {
        assert!(Instant::now() < deadline, "meta file never written");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn disk_tier_survives_a_restart() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/keep", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "max-age=600"), ("surrogate-key", "kept")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[origin.addr], dir.path(), "");
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    assert_eq!(
        c.get(url(&edge, "/keep"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "v0"
    );
    wait_for_meta(dir.path()).await;
    edge.shutdown().await;
    let edge = start_edge_with(&toml, dir.path()).await;
    let r = c.get(url(&edge, "/keep")).send().await.unwrap();
    assert!(
        cache_status(&r).starts_with("waypost; hit"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.text().await.unwrap(), "v0");
    assert_eq!(origin.hits("/keep"), 1);
    // Surrogate keys survive too, and so does a soft purge by one.
    let out: serde_json::Value = c
        .post(format!(
            "http://{}/purge?key=kept&soft=1",
            edge.admin_addr()
        ))
        .bearer_auth("test-admin-token-0123456789")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(out["purged"].as_u64().unwrap() >= 1);
    edge.shutdown().await;
    let edge = start_edge_with(&toml, dir.path()).await;
    let r = c.get(url(&edge, "/keep")).send().await.unwrap();
    assert!(
        !cache_status(&r).starts_with("waypost; hit"),
        "a soft-purged object came back fresh after a restart: {}",
        cache_status(&r)
    );
    assert_eq!(r.text().await.unwrap(), "v1");
    assert_eq!(origin.hits("/keep"), 2);
}

/// What a raw origin sends for one request, and whether it then closes the
/// connection or keeps it open sending nothing more.
type RawAnswer = (&'static [u8], bool);

/// Promises 1000 bytes and sends 10.
const CUT: &[u8] =
    b"HTTP/1.1 200 OK\r\ncache-control: max-age=600\r\ncontent-length: 1000\r\n\r\n0123456789";

/// A raw origin answering its n-th object request with `answers[n]` (the
/// last one repeating); returns its address and the count of object
/// requests it got.
async fn raw_origin(answers: Vec<RawAnswer>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let (count, answers) = (count.clone(), answers.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                if req.starts_with("GET /healthz") {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    return;
                }
                let i = count.fetch_add(1, Ordering::SeqCst);
                let (bytes, stall) = answers[i.min(answers.len() - 1)];
                let _ = s.write_all(bytes).await;
                if stall {
                    // Holds the connection until the edge gives up on it.
                    let _ = s.read(&mut buf).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, served)
}

/// Two requests for an object whose fill is cut short: each must end in an
/// error (never a short 200) and reach the origin (nothing was cached).
async fn assert_cut_fills_are_errors_and_not_cached(toml: &str, dir: &Path, served: &AtomicUsize) {
    let edge = start_edge_with(toml, dir).await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for _ in 0..2 {
        // The abort may land before or after the response head was flushed:
        // either way the client must see an error, never a short 200.
        if let Ok(r) = c.get(url(&edge, "/cut")).send().await {
            let body = r.bytes().await;
            assert!(
                body.as_ref().is_err_and(|e| !e.is_timeout()),
                "a cut body must end in an error, not {body:?}"
            );
        }
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        2,
        "the partial body was not cached"
    );
}

#[tokio::test]
async fn an_origin_dying_mid_body_aborts_the_response_and_caches_nothing() {
    let (addr, served) = raw_origin(vec![(CUT, false)]).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[addr], dir.path(), "");
    assert_cut_fills_are_errors_and_not_cached(&toml, dir.path(), &served).await;
}

#[tokio::test]
async fn an_origin_stalling_mid_body_is_cut_after_the_between_bytes_timeout() {
    let (addr, served) = raw_origin(vec![(CUT, true)]).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[addr], dir.path(), "").replace(
        "fall = 1\n",
        "fall = 1\nbetween_bytes_timeout = \"300ms\"\n",
    );
    assert!(toml.contains("between_bytes_timeout"));
    assert_cut_fills_are_errors_and_not_cached(&toml, dir.path(), &served).await;
}

#[tokio::test]
async fn a_failed_refill_leaves_the_stored_copy_whole() {
    let (addr, served) = raw_origin(vec![
        (
            b"HTTP/1.1 200 OK\r\ncache-control: max-age=0, stale-if-error=600\r\ncontent-length: 5\r\n\r\nfirst",
            false,
        ),
        (CUT, false),
        (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\ndown", false),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[addr], dir.path(), ""), dir.path()).await;
    let c = client();
    let get = || c.get(url(&edge, "/x")).send();
    assert_eq!(get().await.unwrap().text().await.unwrap(), "first");
    // On disk before it goes stale and is refetched.
    wait_for_meta(dir.path()).await;
    // The refill is cut short: that response fails...
    if let Ok(r) = get().await {
        assert!(r.bytes().await.is_err());
    }
    // ...and the origin's next answer is an error, so the stored copy is
    // served (stale-if-error), whole.
    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "first");
    assert_eq!(served.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn without_a_disk_tier_a_body_that_outgrows_memory_is_passed_through() {
    // 3,000 bytes in three chunks, no Content-Length: the size shows only
    // while the body arrives.
    let chunk = "x".repeat(1000);
    let chunked: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncache-control: max-age=600\r\ntransfer-encoding: chunked\r\n\r\n\
             3e8\r\n{chunk}\r\n3e8\r\n{chunk}\r\n3e8\r\n{chunk}\r\n0\r\n\r\n"
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let (addr, served) = raw_origin(vec![(chunked, false)]).await;
    let dir = tempfile::tempdir().unwrap();
    let toml: String = edge_toml(&[addr], dir.path(), "")
        .replace(
            "max_memory_object = \"1MiB\"",
            "max_memory_object = \"1KiB\"",
        )
        .lines()
        .filter(|l| !l.starts_with("disk ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    // The fill that finds out is cut (memory stays bounded)...
    if let Ok(r) = c.get(url(&edge, "/big")).send().await {
        assert!(r.bytes().await.is_err(), "a cut body must end in an error");
    }
    // ...and the next requests stream from the origin, uncached and whole.
    for n in 2..=3 {
        let r = c.get(url(&edge, "/big")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().len(), 3000);
        assert_eq!(served.load(Ordering::SeqCst), n);
    }
}
