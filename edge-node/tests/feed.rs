//! The edge following a real origin's change feed: deploys and purges made
//! at the origin reach the edge's cache without calling the edge, also when
//! they happened while the edge was down.

mod support;

use std::time::{Duration, Instant};

use support::{cache_status, client, edge_toml, start_edge_with};

const TOKEN: &str = "feed-token";
/// The origin's read token, which the edge follows the feed with.
const READ_TOKEN: &str = "feed-read-token";

async fn start_origin(dir: &std::path::Path) -> origin::RunningServer {
    start_origin_keeping(dir, origin::raft::FeedRetention::DEFAULT).await
}

async fn start_origin_keeping(
    dir: &std::path::Path,
    feed: origin::raft::FeedRetention,
) -> origin::RunningServer {
    let mut config = origin::Config::for_data_dir(dir.join("origin"), TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.read_token = Some(READ_TOKEN.into());
    config.feed = feed;
    origin::Server::start(config).await.unwrap()
}

fn feed_edge_toml(origin: &origin::RunningServer, dir: &std::path::Path) -> String {
    edge_toml(
        &[origin.local_addr()],
        dir,
        &format!("[feed]\npool = \"main\"\ntoken = \"{READ_TOKEN}\"\n"),
    )
}

async fn put_asset(origin: &origin::RunningServer, path: &str, body: &str, key: &str) {
    let r = client()
        .put(format!("http://{}/assets/{path}", origin.local_addr()))
        .bearer_auth(TOKEN)
        .header("cache-control", "public, max-age=600")
        .header("surrogate-key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// The origin's newest feed sequence number.
async fn origin_seq(origin: &origin::RunningServer) -> u64 {
    let page: serde_json::Value = client()
        .get(format!(
            "http://{}/events?after=18446744073709551615",
            origin.local_addr()
        ))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["last_seq"].as_u64().unwrap()
}

async fn purge_at_origin(origin: &origin::RunningServer, body: serde_json::Value) -> u64 {
    let r: serde_json::Value = client()
        .post(format!("http://{}/purge", origin.local_addr()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["seq"].as_u64().unwrap()
}

/// Waits until the edge has applied feed event `seq` (its metric).
async fn wait_for_position(edge: &edge_node::RunningServer, seq: u64) {
    let url = format!("http://{}/metrics", edge.admin_addr());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let position = text
            .lines()
            .find_map(|l| l.strip_prefix("waypost_edge_feed_position "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if position.is_some_and(|p| p >= seq) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "edge did not apply feed event {seq} within 10 s (position {position:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get(edge: &edge_node::RunningServer, path: &str) -> (String, String) {
    let r = client().get(support::url(edge, path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    (cache_status(&r), r.text().await.unwrap())
}

#[tokio::test]
async fn deploys_and_purges_at_the_origin_reach_the_edge_cache() {
    let dir = tempfile::tempdir().unwrap();
    let origin = start_origin(dir.path()).await;
    put_asset(&origin, "app.js", "v1", "code").await;
    put_asset(&origin, "logo.svg", "<svg/>", "brand").await;
    let edge = start_edge_with(&feed_edge_toml(&origin, dir.path()), dir.path()).await;
    wait_for_position(&edge, origin_seq(&origin).await).await;

    assert_eq!(get(&edge, "/assets/app.js").await.1, "v1");
    let (cs, _) = get(&edge, "/assets/app.js?build=7").await;
    assert!(cs.contains("fwd=uri-miss"), "{cs}");
    assert!(
        get(&edge, "/assets/app.js")
            .await
            .0
            .starts_with("waypost; hit")
    );

    // A deploy: the edge drops its copies (every query string) at once,
    // although they were fresh for another ten minutes.
    put_asset(&origin, "app.js", "v2", "code").await;
    wait_for_position(&edge, origin_seq(&origin).await).await;
    let (cs, body) = get(&edge, "/assets/app.js").await;
    assert_eq!(body, "v2");
    assert!(cs.contains("fwd=uri-miss"), "{cs}");
    let (cs, body) = get(&edge, "/assets/app.js?build=7").await;
    assert_eq!((cs.contains("fwd=uri-miss"), body.as_str()), (true, "v2"));

    // A purge by surrogate key at the origin.
    assert!(
        get(&edge, "/assets/logo.svg")
            .await
            .0
            .contains("fwd=uri-miss")
    );
    assert!(
        get(&edge, "/assets/logo.svg")
            .await
            .0
            .starts_with("waypost; hit")
    );
    let seq = purge_at_origin(&origin, serde_json::json!({"surrogate_keys": ["brand"]})).await;
    wait_for_position(&edge, seq).await;
    assert!(
        get(&edge, "/assets/logo.svg")
            .await
            .0
            .contains("fwd=uri-miss")
    );
    assert!(
        get(&edge, "/assets/app.js")
            .await
            .0
            .starts_with("waypost; hit")
    );
}

#[tokio::test]
async fn a_purge_made_while_the_edge_was_down_applies_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let origin = start_origin(dir.path()).await;
    put_asset(&origin, "logo.svg", "<svg/>", "brand").await;
    put_asset(&origin, "kept.css", "a{}", "style").await;
    let toml = feed_edge_toml(&origin, dir.path());
    let edge = start_edge_with(&toml, dir.path()).await;
    wait_for_position(&edge, origin_seq(&origin).await).await;
    for path in ["/assets/logo.svg", "/assets/kept.css"] {
        assert!(get(&edge, path).await.0.contains("fwd=uri-miss"));
    }
    edge.shutdown().await;

    let seq = purge_at_origin(&origin, serde_json::json!({"paths": ["/assets/logo.svg"]})).await;
    let edge = start_edge_with(&toml, dir.path()).await;
    wait_for_position(&edge, seq).await;
    assert!(
        get(&edge, "/assets/logo.svg")
            .await
            .0
            .contains("fwd=uri-miss")
    );
    let (cs, _) = get(&edge, "/assets/kept.css").await;
    assert!(
        cs.starts_with("waypost; hit"),
        "kept on disk across the restart: {cs}"
    );
}

async fn publish_plugin(origin: &origin::RunningServer, name: &str, wasm: Vec<u8>) {
    let r = client()
        .put(format!("http://{}/plugins/{name}", origin.local_addr()))
        .bearer_auth(TOKEN)
        .body(wasm)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// Waits until `GET /` at the edge answers a body starting with `prefix`.
async fn wait_for_body(edge: &edge_node::RunningServer, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client().get(support::url(edge, "/")).send().await.unwrap();
        let body = r.text().await.unwrap();
        if body.starts_with(prefix) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the edge still answers {body:?}, not {prefix:?}…"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_versions_published_at_the_origin_are_installed() {
    let dir = tempfile::tempdir().unwrap();
    let origin = start_origin(dir.path()).await;
    let (hello, raw) = (
        support::plugin_wasm("hello"),
        support::plugin_wasm("raw-hello"),
    );
    // Published before the edge starts: installed at startup.
    publish_plugin(&origin, "app", std::fs::read(&raw).unwrap()).await;
    let live = dir.path().join("app.wasm");
    std::fs::copy(&hello, &live).unwrap();
    let toml = support::plugin_edge_toml(
        origin.local_addr(),
        dir.path(),
        &[("app", &live)],
        &["app"],
        "",
        &format!("[feed]\npool = \"main\"\ntoken = \"{READ_TOKEN}\"\n"),
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    wait_for_body(&edge, "raw hello").await;

    // Published while it runs: installed from the feed.
    publish_plugin(&origin, "app", std::fs::read(&hello).unwrap()).await;
    wait_for_body(&edge, "Hello").await;

    // A version that does not load here (a core wasm module, not a
    // component) leaves the running one serving.
    publish_plugin(&origin, "app", b"\0asm\x01\0\0\0".to_vec()).await;
    wait_for_position(&edge, origin_seq(&origin).await).await;
    wait_for_body(&edge, "Hello").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_writes_elsewhere_reach_the_plugins_cached_reads() {
    let dir = tempfile::tempdir().unwrap();
    let origin = start_origin(dir.path()).await;
    let counter = support::plugin_wasm("kv-counter");
    // Reads are cached for an hour: only the feed can make a write made
    // elsewhere visible here before then.
    let extra = format!(
        "kv_pool = \"main\"\nkv_token = \"{TOKEN}\"\nkv_cache_ttl = \"1h\"\n[feed]\npool = \"main\"\ntoken = \"{READ_TOKEN}\"\n"
    );
    let toml = support::plugin_edge_toml(
        origin.local_addr(),
        dir.path(),
        &[("counter", &counter)],
        &["counter"],
        "",
        &extra,
    );
    let toml = support::grant(&toml, "counter", r#"kv_namespaces = ["counters"]"#);
    let edge = start_edge_with(&toml, dir.path()).await;
    let read = || async {
        let r = client()
            .get(support::url(&edge, "/counter/visits"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.unwrap()["value"].clone()
    };
    assert_eq!(read().await, 0);

    // Another region (here: the origin's API directly) writes the key.
    let r = client()
        .put(format!("http://{}/kv/counters/visits", origin.local_addr()))
        .bearer_auth(TOKEN)
        .body("41")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    wait_for_position(&edge, origin_seq(&origin).await).await;
    assert_eq!(read().await, 41);
}

async fn kv_put(origin: &origin::RunningServer, key: &str) {
    let r = client()
        .put(format!("http://{}/kv/churn/{key}", origin.local_addr()))
        .bearer_auth(TOKEN)
        .body("v")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// A counter of the edge's admin `/metrics`, 0 when absent.
async fn edge_counter(edge: &edge_node::RunningServer, name: &str) -> u64 {
    let text = client()
        .get(format!("http://{}/metrics", edge.admin_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Plugins' KV writes (thousands a second in production) trim only the
/// feed's KV window: an edge that was away through many of them resumes
/// with its cache intact. Content events trimmed while it was away make it
/// revalidate everything it stored, lazily, and keep serving.
#[tokio::test]
async fn kv_churn_while_an_edge_is_away_does_not_cost_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let keep = origin::raft::FeedRetention {
        events: 5,
        bytes: 1 << 20,
    };
    let origin = start_origin_keeping(dir.path(), keep).await;
    put_asset(&origin, "app.js", "v1", "code").await;
    let toml = feed_edge_toml(&origin, dir.path());
    let edge = start_edge_with(&toml, dir.path()).await;
    wait_for_position(&edge, origin_seq(&origin).await).await;
    assert!(
        get(&edge, "/assets/app.js")
            .await
            .0
            .contains("fwd=uri-miss")
    );
    edge.shutdown().await;

    for i in 0..50 {
        kv_put(&origin, &i.to_string()).await;
    }
    put_asset(&origin, "marker.txt", "m", "marker").await;
    let edge = start_edge_with(&toml, dir.path()).await;
    wait_for_position(&edge, origin_seq(&origin).await).await;
    let (cs, _) = get(&edge, "/assets/app.js").await;
    assert!(
        cs.starts_with("waypost; hit"),
        "still fresh after KV churn: {cs}"
    );
    assert_eq!(
        edge_counter(&edge, "waypost_edge_feed_resyncs_total").await,
        0
    );
    edge.shutdown().await;

    // More deploys than the content window keeps, while the edge is down.
    for i in 0..8 {
        put_asset(&origin, &format!("other{i}.css"), "a{}", "style").await;
    }
    let edge = start_edge_with(&toml, dir.path()).await;
    wait_for_position(&edge, origin_seq(&origin).await).await;
    assert_eq!(
        edge_counter(&edge, "waypost_edge_feed_resyncs_total").await,
        1
    );
    let (cs, body) = get(&edge, "/assets/app.js").await;
    assert_eq!(body, "v1");
    assert!(
        cs.contains("fwd-status=304"),
        "revalidated after missed deploys: {cs}"
    );
    let (cs, _) = get(&edge, "/assets/app.js").await;
    assert!(
        cs.starts_with("waypost; hit"),
        "fresh again once revalidated: {cs}"
    );
    edge.shutdown().await;

    // The mark is on disk: a restart does not bring the stale objects back
    // as fresh, and objects revalidated since are not marked again.
    let edge = start_edge_with(&toml, dir.path()).await;
    wait_for_position(&edge, origin_seq(&origin).await).await;
    let (cs, _) = get(&edge, "/assets/app.js").await;
    assert!(cs.starts_with("waypost; hit"), "{cs}");
    assert_eq!(
        edge_counter(&edge, "waypost_edge_feed_resyncs_total").await,
        0
    );
}

/// The origin's side of the windows: a reader naming its classes gets what
/// is kept and which classes it missed, instead of a 410.
#[tokio::test]
async fn readers_of_one_class_are_not_failed_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let keep = origin::raft::FeedRetention {
        events: 3,
        bytes: 1 << 20,
    };
    let origin = start_origin_keeping(dir.path(), keep).await;
    put_asset(&origin, "a.txt", "a", "k").await;
    for i in 0..10 {
        kv_put(&origin, &i.to_string()).await;
    }
    let page = |query: &'static str| {
        let url = format!("http://{}/events?{query}", origin.local_addr());
        async move {
            let r = client()
                .get(url)
                .bearer_auth(READ_TOKEN)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (status, content) = page("after=0&classes=content").await;
    assert_eq!(status, 200);
    assert_eq!(content["events"].as_array().unwrap().len(), 1, "{content}");
    assert!(content.get("missed").is_none(), "{content}");
    let (_, both) = page("after=0&classes=content,kv").await;
    assert_eq!(both["missed"], serde_json::json!(["kv"]), "{both}");
    assert_eq!(both["events"].as_array().unwrap().len(), 4, "{both}");
    assert_eq!(
        page("after=0").await.0,
        410,
        "without classes: the old contract"
    );
    let (status, body) = page("after=0&classes=queues").await;
    assert_eq!((status, body), (400, serde_json::Value::Null));
}
