//! Origin pools and sites: failover between origins, host routing, request
//! limits and forwarding of what the cache does not handle.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test]
async fn a_failed_origin_is_skipped_and_traffic_moves_to_the_other() {
    let a = ScriptedOrigin::start().await;
    let b = ScriptedOrigin::start().await;
    for (o, name) in [(&a, "a"), (&b, "b")] {
        let name = name.to_string();
        o.route("/who", move |_, _| {
            resp(200, &name, &[("cache-control", "no-store")])
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[a.addr, b.addr], dir.path(), ""), dir.path()).await;
    let c = client();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        seen.insert(
            c.get(url(&edge, "/who"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    assert_eq!(seen.len(), 2, "both origins take traffic: {seen:?}");
    a.stop();
    // Every request still succeeds: a refused connection is retried on b.
    for _ in 0..10 {
        let r = c.get(url(&edge, "/who")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "b");
    }
    // And the health checks mark it down (visible in metrics).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = c
            .get(format!("http://{}/metrics", edge.admin_addr()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let down = format!(
            "waypost_edge_origin_up{{pool=\"main\",origin=\"{}\"}} 0",
            a.addr
        );
        if m.contains(&down) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "origin a never marked down:\n{m}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn sites_route_by_host_and_path_prefix() {
    let a = ScriptedOrigin::start().await;
    let b = ScriptedOrigin::start().await;
    a.route("/x", |_, _| resp(200, "pool-a", &[]));
    b.route("/api/x", |_, _| resp(200, "pool-b", &[]));
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[listen]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[[pools]]
name = "a"
origins = ["{a}"]
[[pools]]
name = "b"
origins = ["{b}"]
[[sites]]
hosts = ["www.test", "*.cdn.test"]
pool = "a"
[[sites]]
hosts = ["www.test"]
path_prefix = "/api/"
pool = "b"
"#,
        a = a.addr,
        b = b.addr
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let get = |host: &'static str, path: &'static str| {
        let c = c.clone();
        let u = url(&edge, path);
        async move {
            let r = c.get(u).header("host", host).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("www.test", "/x").await, (200, "pool-a".into()));
    assert_eq!(get("img.cdn.test", "/x").await, (200, "pool-a".into()));
    assert_eq!(get("WWW.TEST:8080", "/api/x").await, (200, "pool-b".into()));
    let (status, body) = get("unknown.test", "/x").await;
    assert_eq!(status, 404);
    assert!(body.contains("unknown.test"), "{body}");
}

#[tokio::test]
async fn oversized_request_bodies_get_413_and_unknown_methods_501() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/up", |seen, _| {
        resp(200, &format!("{} {}", seen.method, seen.body.len()), &[])
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[origin.addr], dir.path(), "")
        .replace("[admin]", "[limits]\nmax_body_bytes = 1024\n[admin]");
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let r = c
        .put(url(&edge, "/up"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("1024"));
    let r = c
        .put(url(&edge, "/up"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "PUT 1000");
    let method = reqwest::Method::from_bytes(b"PROPFIND").unwrap();
    let r = c
        .request(method, url(&edge, "/up"))
        .body("abc")
        .send()
        .await
        .unwrap();
    // Issue 9: a method no site can mean is 501 at the edge.
    assert_eq!(r.status(), 501);
    assert_eq!(
        origin.hits("/up"),
        1,
        "neither the oversized body nor the unknown method reached the origin"
    );
}

/// A raw HTTP/1.1 exchange with the edge: the whole response as text.
async fn raw_request(edge: &edge_node::RunningServer, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(edge.http_addr().unwrap())
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn cache_fills_send_clean_origin_form_requests_without_client_bodies() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/?x=1", |_, _| resp(200, "root", &[]));
    origin.route("/g", |seen, _| {
        resp(200, &format!("body {}", seen.body.len()), &[])
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;

    // Absolute form with an empty path: the target is `/?x=1`.
    let answer = raw_request(
        &edge,
        "GET http://cdn.test?x=1 HTTP/1.1\r\nhost: cdn.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("root"), "{answer}");

    // A GET with a body: the fill must not announce a body it never sends
    // (the origin would wait for it, or read the next request as it).
    let r = client()
        .get(url(&edge, "/g"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-waypost-client-ip", "203.0.113.9")
        .body(vec![b'x'; 60])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "body 0");
    let seen = &origin.seen("/g")[0];
    assert!(
        seen.headers.get("content-length").is_none(),
        "{:?}",
        seen.headers
    );
    // The claimed chain is kept; the address the edge saw cannot be forged.
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-waypost-client-ip"], "127.0.0.1");
}

#[tokio::test]
async fn invalid_config_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[pools]]\nname = \"p\"\norigins = [\"127.0.0.1\"]\n[[sites]]\npool = \"p\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge-node"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("pools[0].origins"),
        "{err}"
    );
}

/// `max_connections` caps what the edge opens to an origin: a burst of
/// slow misses queues for the capped connections instead of opening one
/// each, and every request is still answered.
#[tokio::test]
async fn connections_to_an_origin_are_capped_and_requests_queue_for_them() {
    let origin = ScriptedOrigin::start().await;
    for i in 0..12 {
        let path = format!("/slow/{i}");
        origin.route(&path, |_, _| {
            resp(200, "slow", &[("cache-control", "no-store")])
        });
        origin.delay(&path, Duration::from_millis(150));
    }
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[origin.addr], dir.path(), "").replace(
        "fall = 1\n",
        "fall = 1\nmax_connections = 2\nqueue_timeout = \"20s\"\n",
    );
    assert!(toml.contains("max_connections = 2"));
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let requests = (0..12).map(|i| {
        let (c, url) = (c.clone(), url(&edge, &format!("/slow/{i}")));
        async move { c.get(url).send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Two for traffic, plus the health checks' own connection.
    let seen = origin.max_connections_seen();
    assert!(seen <= 3, "{seen} connections were open at once");
}

/// A request that cannot get a connection slot in time is answered 503
/// with `Retry-After` (the origin is busy, not down), and the origin is
/// not marked down for it.
#[tokio::test]
async fn a_request_that_waits_too_long_for_a_slot_gets_503() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/hold", |_, _| {
        resp(200, "held", &[("cache-control", "no-store")])
    });
    origin.delay("/hold", Duration::from_secs(3));
    origin.route("/quick", |_, _| {
        resp(200, "quick", &[("cache-control", "no-store")])
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[origin.addr], dir.path(), "").replace(
        "fall = 1\n",
        "fall = 1\nmax_connections = 1\nqueue_timeout = \"300ms\"\n",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let hold = tokio::spawn({
        let (c, url) = (c.clone(), url(&edge, "/hold"));
        async move { c.get(url).send().await.unwrap().status() }
    });
    while origin.hits("/hold") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = c.get(url(&edge, "/quick")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body = r.text().await.unwrap();
    assert!(body.contains("connection limit"), "{body}");
    assert!(!body.contains(&origin.addr.to_string()), "{body}");
    assert_eq!(hold.await.unwrap(), 200);
    // Once the slot is free, the origin serves again: it was never down.
    let r = c.get(url(&edge, "/quick")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
