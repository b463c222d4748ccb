//! Freshness and storability (RFC 9111 §3, §4.2) through a real edge in
//! front of a scripted origin.

mod support;

use support::*;

async fn get(c: &reqwest::Client, url: &str) -> (u16, String, String) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let cs = cache_status(&r);
    (status, cs, r.text().await.unwrap())
}

#[tokio::test]
async fn fresh_response_is_a_hit_with_age_and_cache_status() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/a", |_, n| {
        resp(200, &format!("v{n}"), &[("cache-control", "max-age=60")])
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    let (s, cs, body) = get(&c, &url(&edge, "/a")).await;
    assert_eq!((s, body.as_str()), (200, "v0"));
    assert!(cs.contains("fwd=uri-miss") && cs.contains("stored"), "{cs}");
    let r = c.get(url(&edge, "/a")).send().await.unwrap();
    assert!(
        cache_status(&r).starts_with("waypost; hit"),
        "{}",
        cache_status(&r)
    );
    assert!(r.headers().get("age").is_some());
    assert_eq!(r.text().await.unwrap(), "v0");
    assert_eq!(origin.hits("/a"), 1);
}

#[tokio::test]
async fn max_age_expiry_and_s_maxage_wins_for_a_shared_cache() {
    let origin = ScriptedOrigin::start().await;
    // Already older than max-age: stale on arrival.
    origin.route("/old", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "max-age=60"), ("age", "61")],
        )
    });
    // s-maxage overrides max-age in a shared cache, both ways.
    origin.route("/smax0", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "max-age=3600, s-maxage=0")],
        )
    });
    origin.route("/smax", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "max-age=0, s-maxage=3600")],
        )
    });
    origin.route("/short", |_, n| {
        resp(200, &format!("v{n}"), &[("cache-control", "max-age=1")])
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for p in ["/old", "/smax0", "/smax", "/short"] {
        get(&c, &url(&edge, p)).await;
        get(&c, &url(&edge, p)).await;
    }
    assert_eq!(
        origin.hits("/old"),
        2,
        "a response older than max-age is stale"
    );
    assert_eq!(origin.hits("/smax0"), 2, "s-maxage=0 beats max-age=3600");
    assert_eq!(origin.hits("/smax"), 1, "s-maxage=3600 beats max-age=0");
    assert_eq!(origin.hits("/short"), 1);
    // Real expiry of max-age=1: wait for the clock, not for readiness.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, cs, body) = get(&c, &url(&edge, "/short")).await;
    assert_eq!(body, "v1", "{cs}");
    assert_eq!(origin.hits("/short"), 2);
}

#[tokio::test]
async fn no_store_private_and_no_cache_rules() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/nostore", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "no-store, max-age=600")],
        )
    });
    origin.route("/private", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "private, max-age=600")],
        )
    });
    origin.route("/nocache", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "no-cache, max-age=600"),
                ("etag", "\"x\""),
            ],
        )
    });
    origin.route("/mustrev", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "max-age=60, must-revalidate"),
                ("age", "100"),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for p in ["/nostore", "/private", "/nocache", "/mustrev"] {
        for _ in 0..2 {
            get(&c, &url(&edge, p)).await;
        }
        assert_eq!(origin.hits(p), 2, "{p} must go to the origin every time");
    }
    let revalidation = &origin.seen("/nocache")[1];
    assert_eq!(
        revalidation.headers.get("if-none-match").unwrap(),
        "\"x\"",
        "no-cache revalidates with the ETag"
    );
}

#[tokio::test]
async fn responses_that_set_cookies_are_never_stored() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/login", |_, n| {
        resp(
            200,
            "welcome",
            &[
                ("cache-control", "public, max-age=600"),
                ("set-cookie", &format!("sid=client{n}")),
            ],
        )
    });
    origin.route("/page", |seen, n| {
        if seen.headers.contains_key("if-none-match") {
            resp(
                304,
                "",
                &[("etag", "\"p\""), ("set-cookie", &format!("sid=client{n}"))],
            )
        } else {
            resp(
                200,
                "page",
                &[("etag", "\"p\""), ("cache-control", "max-age=0")],
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for n in 0..2 {
        let r = c.get(url(&edge, "/login")).send().await.unwrap();
        assert_eq!(r.headers()["set-cookie"], format!("sid=client{n}").as_str());
    }
    assert_eq!(origin.hits("/login"), 2, "each client got its own cookie");

    // A 304 that sets a cookie is not merged into the stored response: the
    // edge fetches in full, so the cookie reaches only this client.
    assert!(
        c.get(url(&edge, "/page"))
            .send()
            .await
            .unwrap()
            .headers()
            .get("set-cookie")
            .is_none()
    );
    let r = c.get(url(&edge, "/page")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "page");
    let r = c.get(url(&edge, "/page")).send().await.unwrap();
    assert!(
        r.headers().get("set-cookie").is_none(),
        "a stored response replayed another client's cookie: {:?}",
        r.headers()
    );
}

#[tokio::test]
async fn revalidation_304_refreshes_and_edge_serves_200_from_cache() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/r", |seen, n| {
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            resp(
                304,
                "",
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=600"),
                    ("x-updated", &format!("{n}")),
                ],
            )
        } else {
            resp(
                200,
                "body-v1",
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=0"),
                    ("x-updated", "first"),
                ],
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    assert_eq!(get(&c, &url(&edge, "/r")).await.2, "body-v1");
    let r = c.get(url(&edge, "/r")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        cache_status(&r).contains("fwd-status=304"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(
        r.headers().get("x-updated").unwrap(),
        "1",
        "a 304 updates the stored headers"
    );
    assert_eq!(r.text().await.unwrap(), "body-v1");
    // The refreshed max-age=600 now makes it a plain hit.
    let (_, cs, body) = get(&c, &url(&edge, "/r")).await;
    assert!(cs.starts_with("waypost; hit"), "{cs}");
    assert_eq!(body, "body-v1");
    assert_eq!(origin.hits("/r"), 2);
}

#[tokio::test]
async fn vary_accept_encoding_keeps_two_variants_and_vary_star_is_never_reused() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/v", |seen, _| {
        let gz = seen
            .headers
            .get("accept-encoding")
            .is_some_and(|v| v == "gzip");
        resp(
            200,
            if gz { "gzipped" } else { "plain" },
            &[
                ("cache-control", "max-age=600"),
                ("vary", "Accept-Encoding"),
            ],
        )
    });
    origin.route("/star", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "max-age=600"), ("vary", "Accept, *")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for _ in 0..2 {
        let r = c
            .get(url(&edge, "/v"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "gzipped");
        let r = c
            .get(url(&edge, "/v"))
            .header("accept-encoding", "identity")
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "plain");
    }
    assert_eq!(origin.hits("/v"), 2, "one fetch per variant");
    get(&c, &url(&edge, "/star")).await;
    get(&c, &url(&edge, "/star")).await;
    assert_eq!(origin.hits("/star"), 2);
}

#[tokio::test]
async fn fifty_concurrent_misses_cause_one_origin_fetch() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/hot", |_, _| {
        resp(200, "hot", &[("cache-control", "max-age=600")])
    });
    // Slow enough that all 50 requests arrive while the first is in flight.
    origin.delay("/hot", std::time::Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    let u = url(&edge, "/hot");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (c, u) = (c.clone(), u.clone());
            tokio::spawn(async move { c.get(u).send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "hot");
    }
    assert_eq!(origin.hits("/hot"), 1);
}

#[tokio::test]
async fn requests_with_authorization_are_never_stored_or_served_from_cache() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/auth-plain", |_, n| {
        resp(200, &format!("v{n}"), &[("cache-control", "max-age=600")])
    });
    origin.route("/auth-public", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "public, max-age=600")],
        )
    });
    origin.route("/auth-smax", |_, n| {
        resp(200, &format!("v{n}"), &[("cache-control", "s-maxage=600")])
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    // Issue 9: RFC 9111 §3.5 lets a shared cache store `public` or
    // `s-maxage` answers to requests with credentials; the edge never does
    // (an origin's private API answered a token-bearing request that way).
    for p in ["/auth-plain", "/auth-public", "/auth-smax"] {
        for _ in 0..2 {
            let r = c
                .get(url(&edge, p))
                .header("authorization", "Bearer t")
                .send()
                .await
                .unwrap();
            assert!(cache_status(&r).contains("fwd=request"), "{p}");
        }
        assert_eq!(origin.hits(p), 2, "{p}");
        // Nor is anything stored that a request without them could get.
        let r = c.get(url(&edge, p)).send().await.unwrap();
        assert!(
            cache_status(&r).contains("stored"),
            "{p}: {}",
            cache_status(&r)
        );
    }
}
