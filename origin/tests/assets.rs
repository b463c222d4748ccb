//! Upload, download, delete and the headers that go with them.

mod common;

use common::{Origin, TOKEN, header, raw_status, rule};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn put_get_head_delete_round_trip() {
    let o = Origin::start().await;
    let body = "body { color: red }";
    let etag = format!("\"{}\"", hex::encode(Sha256::digest(body)));

    let resp = o.put("/assets/css/site.css", body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "etag"), etag);
    assert_eq!(header(&resp, "location"), "/assets/css/site.css");

    let resp = o.get("/assets/css/site.css").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "etag"), etag);
    assert_eq!(header(&resp, "content-type"), "text/css");
    assert_eq!(header(&resp, "content-length"), body.len().to_string());
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    httpdate::parse_http_date(header(&resp, "last-modified")).unwrap();
    httpdate::parse_http_date(header(&resp, "date")).unwrap();
    assert_eq!(resp.text().await.unwrap(), body);

    let resp = o
        .client
        .head(o.url("/assets/css/site.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), body.len().to_string());
    assert_eq!(header(&resp, "etag"), etag);
    assert!(resp.bytes().await.unwrap().is_empty());

    // Replacing answers 204 with the new ETag; same bytes again is harmless.
    let resp = o.put("/assets/css/site.css", "p {}").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&resp, "etag"),
        format!("\"{}\"", hex::encode(Sha256::digest("p {}")))
    );
    let resp = o.put("/assets/css/site.css", "p {}").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        o.get("/assets/css/site.css")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "p {}"
    );

    let del = |o: &Origin| {
        o.client
            .delete(o.url("/assets/css/site.css"))
            .bearer_auth(TOKEN)
            .send()
    };
    assert_eq!(del(&o).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(del(&o).await.unwrap().status(), StatusCode::NOT_FOUND);
    let resp = o.get("/assets/css/site.css").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("no asset at /assets/css/site.css")
    );
    o.server.shutdown().await;
}

#[tokio::test]
async fn writes_need_the_token() {
    let o = Origin::start().await;
    let url = o.url("/assets/a.txt");
    let no_auth = reqwest::Client::new()
        .put(&url)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&no_auth, "www-authenticate"), "Bearer");
    // The harness client's read token is valid, but only for reads.
    let read_only = o.client.put(&url).body("x").send().await.unwrap();
    assert_eq!(read_only.status(), StatusCode::FORBIDDEN);
    let wrong = o
        .client
        .put(&url)
        .bearer_auth("nope")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        o.get("/assets/a.txt").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        o.put("/assets/a.txt", "x").send().await.unwrap().status(),
        StatusCode::CREATED
    );
    let del = o.client.delete(&url).send().await.unwrap();
    assert_eq!(del.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        o.get("/assets/a.txt").send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn cache_control_from_rules_default_and_upload() {
    let o = Origin::start_with(|c| {
        c.default_cache_control = "public, max-age=5".into();
        c.cache_rules = vec![
            rule("/static/", "public, max-age=3600"),
            rule("/static/immutable/", "public, max-age=31536000, immutable"),
        ];
    })
    .await;
    for path in [
        "/assets/static/a.js",
        "/assets/static/immutable/b.js",
        "/assets/c.js",
        "/assets/d.js",
    ] {
        let mut put = o.put(path, "x");
        if path == "/assets/d.js" {
            put = put.header("cache-control", "no-store");
        }
        assert!(put.send().await.unwrap().status().is_success());
    }
    let cc = |path: &'static str| {
        let req = o.get(path).send();
        async move { header(&req.await.unwrap(), "cache-control").to_string() }
    };
    assert_eq!(cc("/assets/static/a.js").await, "public, max-age=3600");
    assert_eq!(
        cc("/assets/static/immutable/b.js").await,
        "public, max-age=31536000, immutable"
    );
    assert_eq!(cc("/assets/c.js").await, "public, max-age=5");
    assert_eq!(cc("/assets/d.js").await, "no-store");
}

#[tokio::test]
async fn content_type_and_surrogate_keys() {
    let o = Origin::start().await;
    o.put("/assets/data.bin", "x")
        .header("surrogate-key", "  product-1  catalog ")
        .send()
        .await
        .unwrap();
    o.put("/assets/page", "<p>")
        .header("content-type", "text/html")
        .send()
        .await
        .unwrap();
    let resp = o.get("/assets/data.bin").send().await.unwrap();
    assert_eq!(header(&resp, "surrogate-key"), "product-1 catalog");
    assert_eq!(header(&resp, "content-type"), "application/octet-stream");
    let resp = o.get("/assets/page").send().await.unwrap();
    assert_eq!(header(&resp, "content-type"), "text/html");
    assert!(resp.headers().get("surrogate-key").is_none());
}

#[tokio::test]
async fn bad_paths_are_refused_with_a_reason() {
    let o = Origin::start().await;
    for (path, reason) in [
        ("/assets/a//b", "empty segment"),
        ("/assets/a%00b", "control character"),
        ("/assets/a/", "empty segment"),
        ("/assets/x.wpmeta/y", "reserved"),
    ] {
        let resp = o.put(path, "x").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(resp.text().await.unwrap().contains(reason), "{path}");
    }
    let resp = o.get("/assets/..%2F..%2Fetc/passwd").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // URL parsers resolve `..` and `%2e%2e` before sending, so these go raw.
    for path in [
        "/assets/../../etc/passwd",
        "/assets/a/%2e%2e/b",
        "/assets/%2E./x",
    ] {
        let status = raw_status(o.server.local_addr(), "PUT", path).await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{path}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let o = Origin::start().await;
    let resp = o.get("/nope").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = o.client.post(o.url("/assets/a")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&resp, "allow"), "GET, HEAD, PUT, DELETE");
    let resp = o.client.post(o.url("/healthz")).send().await.unwrap();
    assert_eq!(header(&resp, "allow"), "GET, HEAD");
}

#[tokio::test]
async fn healthz_and_metrics() {
    let o = Origin::start().await;
    let resp = o.get("/healthz").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let health: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["role"], "leader");
    o.put("/assets/m.txt", "12345").send().await.unwrap();
    o.get("/assets/m.txt")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let text = o
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "origin_http_requests_total{method=\"PUT\",route=\"assets\",status=\"201\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("origin_assets 1"), "{text}");
    assert!(
        text.contains("origin_http_received_bytes_total 5"),
        "{text}"
    );
    assert!(
        text.contains("origin_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn serves_h2c_and_counts_existing_assets_on_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut config = origin::Config::for_data_dir(data.path(), TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let first = origin::Server::start(config.clone()).await.unwrap();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{}/assets/k", first.local_addr());
    let resp = client
        .put(&url)
        .bearer_auth(TOKEN)
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::CREATED);
    first.shutdown().await;

    let second = origin::Server::start(config).await.unwrap();
    let url = format!("http://{}/metrics", second.local_addr());
    let text = client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("origin_assets 1"), "{text}");
    let url = format!("http://{}/assets/k", second.local_addr());
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "v"
    );
}

/// Issue 9: only assets and `/healthz` are public. An edge that routes
/// every path to the origin must not hand strangers KV values, the change
/// feed, cluster state, plugins or metrics.
#[tokio::test]
async fn private_reads_need_a_credential() {
    let o = Origin::start().await;
    assert_eq!(
        o.put("/kv/sessions/user42", "secret")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        o.put("/assets/a.txt", "x").send().await.unwrap().status(),
        StatusCode::CREATED
    );
    let stranger = reqwest::Client::new();
    for path in [
        "/kv/sessions/user42",
        "/kv/sessions",
        "/events?after=0",
        "/cluster",
        "/plugins",
        "/plugins/x",
        "/metrics",
    ] {
        let resp = stranger.get(o.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains("secret"), "{path}: {text}");
        let head = stranger.head(o.url(path)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::UNAUTHORIZED, "HEAD {path}");
        // The harness client presents the read token.
        let status = o.get(path).send().await.unwrap().status();
        assert_ne!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} with the read token"
        );
    }
    for path in ["/assets/a.txt", "/healthz"] {
        let resp = stranger.get(o.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path} is public");
    }
    let value = o.get("/kv/sessions/user42").send().await.unwrap();
    assert_eq!(value.text().await.unwrap(), "secret");
    // The read token reads but never writes.
    let write = o
        .client
        .put(o.url("/kv/sessions/user42"))
        .body("forged")
        .send()
        .await
        .unwrap();
    // 403, not 401: the token is valid, its scope is too narrow.
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
}
