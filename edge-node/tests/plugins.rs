//! Wasm plugins under a real edge: SDK plugins and a non-SDK component,
//! chains through `next` into the cache, signed URLs, A/B bucketing, hot
//! swap, and faulty plugins failing only their own requests.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use support::*;

async fn text(r: reqwest::Response) -> String {
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_and_a_component_built_without_the_sdk_answer() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (hello, raw) = (plugin_wasm("hello"), plugin_wasm("raw-hello"));
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("hello", &hello), ("raw", &raw)],
        &["hello"],
        "",
        "",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let r = c.get(url(&edge, "/greet")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-plugin"], "hello");
    assert_eq!(text(r).await, "Hello from Waypost!\n/greet\n");
    assert_eq!(origin.hits("/greet"), 0, "the plugin answered by itself");

    let toml = plugin_edge_toml(origin.addr, dir.path(), &[("raw", &raw)], &["raw"], "", "");
    let dir2 = tempfile::tempdir().unwrap();
    let edge2 = start_edge_with(
        &toml.replace(
            &dir.path().display().to_string(),
            &dir2.path().display().to_string(),
        ),
        dir2.path(),
    )
    .await;
    let r = c.get(url(&edge2, "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(text(r).await.contains("raw hello"));
    let metrics = c
        .get(format!("http://{}/metrics", edge.admin_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        plugin_count(&metrics, "hello", "ok") == Some(1),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_middleware_chain_reaches_the_cache_through_next() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/page", |_, n| {
        resp(
            200,
            &format!("page{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("x-frame-options", "SAMEORIGIN"),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let sec = plugin_wasm("security-headers");
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("sec", &sec)],
        &["sec"],
        "csp = \"default-src 'none'\"",
        "",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(url(&edge, "/page")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age=")
        );
        assert_eq!(
            r.headers()["content-security-policy"],
            "default-src 'none'",
            "per-site config reaches the plugin"
        );
        assert_eq!(
            r.headers()["x-frame-options"],
            "SAMEORIGIN",
            "the origin's own header is kept"
        );
        assert_eq!(text(r).await, "page0");
    }
    assert_eq!(
        origin.hits("/page"),
        1,
        "the plugin's `next` requests were served from the cache"
    );
    let seen = &origin.seen("/page")[0];
    assert_eq!(
        seen.headers["host"], "127.0.0.1",
        "the client's host reaches the origin, not `next`"
    );
}

fn sign(secret: &str, path: &str, expires: u64) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{path}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_urls_pass_valid_tokens_and_refuse_the_rest() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/video.mp4", |_, _| {
        resp(200, "video", &[("cache-control", "max-age=600")])
    });
    let dir = tempfile::tempdir().unwrap();
    let wasm = plugin_wasm("signed-urls");
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("signed", &wasm)],
        &["signed"],
        "secret = \"s3cret\"",
        "",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = format!(
        "/video.mp4?expires={}&token={}",
        now + 60,
        sign("s3cret", "/video.mp4", now + 60)
    );
    let r = c.get(url(&edge, &good)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(text(r).await, "video");
    let expired = format!(
        "/video.mp4?expires={}&token={}",
        now - 1,
        sign("s3cret", "/video.mp4", now - 1)
    );
    let forged = format!(
        "/video.mp4?expires={}&token={}",
        now + 60,
        sign("wrong", "/video.mp4", now + 60)
    );
    for bad in [expired.as_str(), forged.as_str(), "/video.mp4"] {
        assert_eq!(
            c.get(url(&edge, bad)).send().await.unwrap().status(),
            403,
            "{bad}"
        );
    }
    assert_eq!(origin.hits("/video.mp4"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_test_buckets_stickily_and_routes_to_two_paths() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/a/home", |_, _| {
        resp(200, "variant a", &[("cache-control", "no-store")])
    });
    origin.route("/b/home", |_, _| {
        resp(200, "variant b", &[("cache-control", "no-store")])
    });
    let dir = tempfile::tempdir().unwrap();
    let wasm = plugin_wasm("ab-test");
    let toml = plugin_edge_toml(origin.addr, dir.path(), &[("ab", &wasm)], &["ab"], "", "");
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        let r = c.get(url(&edge, "/home")).send().await.unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        let bucket = r.headers()["x-ab-bucket"].to_str().unwrap().to_string();
        assert!(cookie.starts_with(&format!("wp_ab={bucket}")), "{cookie}");
        assert_eq!(text(r).await, format!("variant {bucket}"));
        seen.insert(bucket.clone());
        // Sticky: with the cookie, the same bucket and no new cookie.
        let again = c
            .get(url(&edge, "/home"))
            .header("cookie", format!("wp_ab={bucket}"))
            .send()
            .await
            .unwrap();
        assert!(again.headers().get("set-cookie").is_none());
        assert_eq!(text(again).await, format!("variant {bucket}"));
    }
    assert_eq!(seen.len(), 2, "both buckets are used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_plugins_fail_only_their_own_requests() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let faults = [
        "fault-loop",
        "fault-memory",
        "fault-stack",
        "fault-panic",
        "fault-huge",
    ];
    let files: Vec<_> = faults.iter().map(|f| (*f, plugin_wasm(f))).collect();
    let hello = plugin_wasm("hello");
    let mut plugins: Vec<(&str, &std::path::Path)> =
        files.iter().map(|(n, p)| (*n, p.as_path())).collect();
    plugins.push(("hello", &hello));
    let mut toml = plugin_edge_toml(origin.addr, dir.path(), &plugins, &["hello"], "", "");
    for f in faults {
        toml.push_str(&format!(
            "[[sites]]\nhosts = [\"{f}.test\"]\npool = \"main\"\nplugins = [\"{f}\"]\n"
        ));
    }
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let healthy = {
        let (c, u) = (c.clone(), url(&edge, "/ok"));
        tokio::spawn(async move {
            let mut ok = 0;
            let deadline = Instant::now() + Duration::from_secs(4);
            while Instant::now() < deadline {
                let r = c.get(&u).send().await.unwrap();
                assert_eq!(r.status(), 200);
                assert!(text(r).await.starts_with("Hello"));
                ok += 1;
            }
            ok
        })
    };
    let mut outcomes = Vec::new();
    for f in faults {
        let r = c
            .get(url(&edge, "/"))
            .header("host", format!("{f}.test"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await;
        outcomes.push((
            f,
            status,
            body.map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).to_string()),
        ));
    }
    for (f, status, body) in &outcomes {
        match *f {
            "fault-loop" => assert_eq!(*status, 504, "{f}: {body:?}"),
            "fault-huge" => assert!(
                body.is_err() || *status >= 500,
                "{f}: a 1 GiB body must be cut off: {status}"
            ),
            _ => {
                assert_eq!(*status, 500, "{f}: {body:?}");
                let body = body.as_ref().unwrap();
                assert!(
                    body.starts_with("the site's handler failed; request id "),
                    "{f}: {body:?}"
                );
                assert!(
                    !body.contains("fault"),
                    "{f}: the body names the plugin: {body:?}"
                );
            }
        }
    }
    assert!(healthy.await.unwrap() > 5, "other requests kept succeeding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_by_file_and_admin_upload_and_bad_versions_are_rejected() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.wasm");
    std::fs::copy(plugin_wasm("hello"), &live).unwrap();
    let toml = plugin_edge_toml(origin.addr, dir.path(), &[("app", &live)], &["app"], "", "");
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    assert!(
        text(c.get(url(&edge, "/")).send().await.unwrap())
            .await
            .starts_with("Hello")
    );

    // A broken file is rejected; the old version keeps serving.
    std::fs::write(&live, b"not a component").unwrap();
    let upload = c
        .put(format!("http://{}/plugins/app", edge.admin_addr()))
        .bearer_auth("test-admin-token-0123456789")
        .body(b"\0asm garbage".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 422);
    assert!(text(upload).await.contains("not a valid component"));
    assert!(
        text(c.get(url(&edge, "/")).send().await.unwrap())
            .await
            .starts_with("Hello")
    );

    // A good new file is picked up without a restart.
    std::fs::copy(plugin_wasm("raw-hello"), &live).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = text(c.get(url(&edge, "/")).send().await.unwrap()).await;
        if body.contains("raw hello") {
            break;
        }
        assert!(body.starts_with("Hello"), "{body}");
        assert!(Instant::now() < deadline, "new version never swapped in");
        tokio::task::yield_now().await;
    }
    // And the admin API swaps it back at once.
    let upload = c
        .put(format!("http://{}/plugins/app", edge.admin_addr()))
        .bearer_auth("test-admin-token-0123456789")
        .body(std::fs::read(plugin_wasm("hello")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    assert!(
        text(c.get(url(&edge, "/")).send().await.unwrap())
            .await
            .starts_with("Hello")
    );
}

#[tokio::test]
async fn invalid_components_and_missing_imports_are_refused_at_load() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("junk", &junk)],
        &["junk"],
        "",
        "",
    );
    let config = edge_node::Config::from_toml(&dir.path().join("edge.toml"), &toml).unwrap();
    let err = edge_node::Server::start(config)
        .await
        .err()
        .expect("junk is refused")
        .to_string();
    assert!(
        err.contains("junk") && err.contains("not a valid component"),
        "{err}"
    );

    let needs = dir.path().join("needs.wasm");
    let component = wat::parse_str(
        r#"(component (import "acme:missing/api@1.0.0" (instance (export "f" (func)))))"#,
    )
    .unwrap();
    std::fs::write(&needs, component).unwrap();
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("needs", &needs)],
        &["needs"],
        "",
        "",
    );
    let config = edge_node::Config::from_toml(&dir.path().join("edge.toml"), &toml).unwrap();
    let err = edge_node::Server::start(config)
        .await
        .err()
        .expect("missing import is refused")
        .to_string();
    assert!(err.contains("acme:missing/api@1.0.0"), "{err}");
}

#[path = "../../geodns/tests/support/mmdb.rs"]
mod mmdb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_plugin_sees_the_client_location_and_redirects_by_country() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/shop", |seen, _| {
        let country = seen
            .headers
            .get("x-geo-country")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        resp(
            200,
            &format!("shop for {country}"),
            &[("cache-control", "no-store")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("geo.mmdb");
    std::fs::write(
        &db,
        mmdb::write(&[mmdb::Entry {
            network: "127.0.0.0/8".parse().unwrap(),
            latitude: 52.5,
            longitude: 13.4,
            country: "DE",
            continent: "EU",
        }]),
    )
    .unwrap();
    let wasm = plugin_wasm("geo");
    let extra = format!("geoip_db = \"{}\"\n", db.display());
    let mut toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("geo", &wasm)],
        &["geo"],
        "",
        &extra,
    );
    toml.push_str("[[sites]]\nhosts = [\"redirect.test\"]\npool = \"main\"\nplugins = [\"geo\"]\nplugin_config = { \"redirect.DE\" = \"https://de.example.com/\" }\n");
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(url(&edge, "/shop")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-geo-country"], "DE");
    assert_eq!(r.headers()["x-geo-continent"], "EU");
    assert_eq!(
        text(r).await,
        "shop for DE",
        "the plugin adds geo headers to the request it forwards"
    );
    let r = c
        .get(url(&edge, "/shop"))
        .header("host", "redirect.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://de.example.com/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_counter_keeps_state_in_the_origin_kv() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = origin::Config::for_data_dir(dir.path().join("origin"), "kv-token");
    config.listen = "127.0.0.1:0".parse().unwrap();
    let origin = origin::Server::start(config).await.unwrap();
    let wasm = plugin_wasm("kv-counter");
    let extra = "kv_pool = \"main\"\nkv_token = \"kv-token\"\nkv_cache_ttl = \"1ms\"\n";
    let toml = plugin_edge_toml(
        origin.local_addr(),
        dir.path(),
        &[("counter", &wasm)],
        &["counter"],
        "",
        extra,
    );
    let ungranted = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let r = c
        .get(url(&ungranted, "/counter/visits"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let reason = r.text().await.unwrap();
    assert!(
        reason.contains("not granted KV namespace `counters`"),
        "{reason}"
    );
    ungranted.shutdown().await;

    let toml = grant(&toml, "counter", r#"kv_namespaces = ["counters"]"#);
    let edge = start_edge_with(&toml, dir.path()).await;
    let get = c.get(url(&edge, "/counter/visits")).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.json::<serde_json::Value>().await.unwrap()["value"], 0);
    for n in 1..=3 {
        let r = c.post(url(&edge, "/counter/visits")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["value"], n);
    }
    // The value lives in the origin, not in the plugin instance.
    let stored = c
        .get(format!("http://{}/kv/counters/visits", origin.local_addr()))
        .bearer_auth("kv-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(stored.trim(), "3");

    // `kv.list` against the real origin's listing, past one page (1,000
    // keys): names with characters that must be escaped in a URL are
    // listed as written.
    let odd = ["a b", "x/y", "q?&=#%"];
    let keys: Vec<String> = (0..1005)
        .map(|i| format!("n{i:04}"))
        .chain(odd.iter().map(|k| k.to_string()))
        .collect();
    let origin_addr = origin.local_addr();
    futures::stream::iter(keys.clone())
        .for_each_concurrent(32, |key| {
            let c = c.clone();
            async move {
                let path = waypost_api::kv::key_path(
                    &waypost_api::Namespace::parse("counters").unwrap(),
                    &waypost_api::KvKey::parse(&key).unwrap(),
                );
                let r = c
                    .put(format!("http://{origin_addr}{path}"))
                    .bearer_auth("kv-token")
                    .body("1")
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{key}: {}", r.status());
            }
        })
        .await;
    let listed = c.get(url(&edge, "/counters")).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.unwrap();
    let mut want = keys;
    want.push("visits".into());
    want.sort();
    assert_eq!(listed["counters"], serde_json::json!(want));
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_during_a_swap_finishes_on_the_old_version() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/slow", |_, _| {
        resp(200, "from origin", &[("cache-control", "no-store")])
    });
    origin.delay("/slow", Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.wasm");
    std::fs::copy(plugin_wasm("security-headers"), &live).unwrap();
    // A deadline well past the origin's delay, which outlasts the upload's
    // compile even on a slow machine.
    let toml = plugin_edge_toml(origin.addr, dir.path(), &[("app", &live)], &["app"], "", "")
        .replace("timeout = \"2s\"", "timeout = \"30s\"");
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();

    // The old version (security-headers) is inside its `next` call, waiting
    // on the slow origin, when the new version (raw-hello) is uploaded.
    let in_flight = tokio::spawn(c.get(url(&edge, "/slow")).send());
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.hits("/slow") == 0 {
        assert!(
            Instant::now() < deadline,
            "request never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let upload = c
        .put(format!("http://{}/plugins/app", edge.admin_addr()))
        .bearer_auth("test-admin-token-0123456789")
        .body(std::fs::read(plugin_wasm("raw-hello")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    assert!(
        !in_flight.is_finished(),
        "the slow request ended before the swap"
    );
    let new = c.get(url(&edge, "/slow")).send().await.unwrap();
    assert_eq!(
        text(new).await,
        "raw hello\n",
        "new requests get the new version"
    );

    let old = in_flight.await.unwrap().unwrap();
    assert_eq!(old.status(), 200);
    assert!(
        old.headers().contains_key("strict-transport-security"),
        "the in-flight request finished on the old version: {:?}",
        old.headers()
    );
    assert_eq!(text(old).await, "from origin");
}
