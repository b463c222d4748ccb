//! wasi:http 0.3 plugins under a real edge: a `service` component answers,
//! a `middleware` component chained after a 0.2 plugin reaches the cache
//! through its imported handler, a 0.3 service's outgoing requests follow
//! the edge's policy, 0.3 faults fail only their own requests, and a
//! plugin swaps from a 0.2 to a 0.3 version under the same name.

mod support;

use std::time::{Duration, Instant};

use support::*;

async fn text(r: reqwest::Response) -> String {
    r.text().await.unwrap()
}

const HELLO_P3: &str = "Hello from Waypost (wasi:http 0.3)!\n";

async fn metrics(c: &reqwest::Client, edge: &edge_node::RunningServer) -> String {
    c.get(format!("http://{}/metrics", edge.admin_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p3_service_answers() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hello = plugin_wasm("hello_p3");
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("hello", &hello)],
        &["hello"],
        "",
        "",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(url(&edge, "/greet?x=1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-plugin"], "hello-p3");
        assert_eq!(text(r).await, format!("{HELLO_P3}/greet?x=1\n"));
    }
    assert_eq!(origin.hits("/greet"), 0, "the plugin answered by itself");
    let metrics = metrics(&c, &edge).await;
    assert!(
        plugin_count(&metrics, "hello", "ok") == Some(3),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p2_plugin_then_a_p3_middleware_reach_the_cache() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/page", |_, n| {
        resp(
            200,
            &format!("page{n}"),
            &[("cache-control", "max-age=600")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let (sec, mw) = (plugin_wasm("security-headers"), plugin_wasm("headers_p3"));
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("sec", &sec), ("mw", &mw)],
        &["sec", "mw"],
        "",
        "",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(url(&edge, "/page")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-p3-middleware"],
            "headers-p3",
            "the 0.3 middleware's header"
        );
        assert!(
            r.headers()["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "the 0.2 plugin's header"
        );
        assert_eq!(text(r).await, "page0", "the origin's body, through both");
    }
    assert_eq!(
        origin.hits("/page"),
        1,
        "the middleware's imported handler led to the cache"
    );
    assert_eq!(
        origin.seen("/page")[0].headers["host"],
        "127.0.0.1",
        "the client's host reaches the origin, not `next`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p3_service_reaches_next_and_pools_and_nothing_else() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/data", |_, n| {
        resp(
            200,
            &format!("data{n}"),
            &[("cache-control", "max-age=600")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let fixture = plugin_wasm("fault_p3");
    let ungranted = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("p3", &fixture)],
        &["p3"],
        "",
        "",
    );
    let edge = start_edge_with(
        &grant(&ungranted, "p3", r#"backends = ["main"]"#),
        dir.path(),
    )
    .await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(url(&edge, "/send/next/data")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(text(r).await, "data0");
    }
    assert_eq!(origin.hits("/data"), 1, "`next` is the cache path");
    let r = c.get(url(&edge, "/send/main/data")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(text(r).await, "data1", "a pool name goes to that pool");
    let r = c
        .get(url(&edge, "/send/example.com/data"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    // The reason (HttpRequestDenied) is in the log; strangers read only
    // that the handler failed.
    assert!(
        text(r)
            .await
            .starts_with("the site's handler answered with an error; request id ")
    );
    assert_eq!(origin.hits("/data"), 2);

    // A pool the plugin is not granted is out of reach like any host.
    edge.shutdown().await;
    let edge = start_edge_with(&ungranted, dir.path()).await;
    let r = c.get(url(&edge, "/send/main/data")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    // The reason (HttpRequestDenied) is in the log; strangers read only
    // that the handler failed.
    assert!(
        text(r)
            .await
            .starts_with("the site's handler answered with an error; request id ")
    );
    assert_eq!(origin.hits("/data"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_waiting_on_a_host_call_past_its_deadline_gets_504() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/slow", |_, _| resp(200, "late", &[]));
    // Far past the plugin's 2 s timeout and the test client's patience.
    origin.delay("/slow", Duration::from_secs(600));
    let dir = tempfile::tempdir().unwrap();
    let fixture = plugin_wasm("fault_p3");
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("p3", &fixture)],
        &["p3"],
        "",
        "",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // The guest is parked in its `next` call, where the epoch deadline
    // cannot trap it; the edge still answers within the deadline.
    let r = c.get(url(&edge, "/send/next/slow")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert!(text(r).await.contains("deadline"));
    // Its slot was given back: the plugin still answers.
    let r = c.get(url(&edge, "/")).send().await.unwrap();
    assert_eq!(text(r).await, "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_faults_fail_only_their_own_requests() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fixture = plugin_wasm("fault_p3");
    let toml = plugin_edge_toml(
        origin.addr,
        dir.path(),
        &[("fault", &fixture)],
        &["fault"],
        "",
        "",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let healthy = {
        let (c, u) = (c.clone(), url(&edge, "/ok"));
        tokio::spawn(async move {
            let mut ok = 0;
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                let r = c.get(&u).send().await.unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(text(r).await, "ok\n");
                ok += 1;
            }
            ok
        })
    };
    let trap = c.get(url(&edge, "/trap")).send().await.unwrap();
    assert_eq!(trap.status(), 500);
    // Strangers read this body: a reason and a request id for the log,
    // nothing of the trap, its backtrace or the plugin.
    let body = text(trap).await;
    assert!(
        body.starts_with("the site's handler failed; request id "),
        "{body}"
    );
    for leak in ["fault", "wasm", "backtrace", "unreachable", "0x"] {
        assert!(!body.contains(leak), "{leak:?} in {body:?}");
    }
    let started = Instant::now();
    let spin = c.get(url(&edge, "/loop")).send().await.unwrap();
    assert_eq!(spin.status(), 504);
    assert!(text(spin).await.contains("deadline"));
    assert!(started.elapsed() < Duration::from_secs(10));
    let half = c.get(url(&edge, "/half")).send().await.unwrap();
    assert_eq!(half.status(), 200, "the head was out before the trap");
    assert!(
        half.bytes().await.is_err(),
        "a trap mid-body cuts the transfer, never a short complete body"
    );
    let huge = c.get(url(&edge, "/huge")).send().await.unwrap();
    assert_eq!(huge.status(), 200);
    assert!(
        huge.bytes().await.is_err(),
        "an endless body is cut at max_response_bytes"
    );
    assert!(healthy.await.unwrap() > 5, "other requests kept succeeding");
    let metrics = metrics(&c, &edge).await;
    for outcome in ["trap", "timeout"] {
        // `/half` and `/huge` count as ok: their heads were sent.
        assert_eq!(
            plugin_count(&metrics, "fault", outcome),
            Some(1),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_swaps_from_p2_to_p3_and_back() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.wasm");
    std::fs::copy(plugin_wasm("hello"), &live).unwrap();
    let toml = plugin_edge_toml(origin.addr, dir.path(), &[("app", &live)], &["app"], "", "");
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let body = text(c.get(url(&edge, "/")).send().await.unwrap()).await;
    assert!(body.starts_with("Hello from Waypost!"), "{body}");

    // The admin API swaps in the 0.3 version at once.
    let upload = c
        .put(format!("http://{}/plugins/app", edge.admin_addr()))
        .bearer_auth("test-admin-token-0123456789")
        .body(std::fs::read(plugin_wasm("hello_p3")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    assert_eq!(
        text(c.get(url(&edge, "/")).send().await.unwrap()).await,
        format!("{HELLO_P3}/\n")
    );

    // And a changed file brings the 0.2 version back without a restart.
    std::fs::copy(plugin_wasm("hello"), &live).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = text(c.get(url(&edge, "/")).send().await.unwrap()).await;
        if body.starts_with("Hello from Waypost!") {
            break;
        }
        assert!(body.starts_with(HELLO_P3), "{body}");
        assert!(
            Instant::now() < deadline,
            "the 0.2 version never swapped in"
        );
        tokio::task::yield_now().await;
    }
}
