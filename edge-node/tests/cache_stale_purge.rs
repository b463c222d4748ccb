//! Serving stale (stale-while-revalidate, stale-if-error) and purging.

mod support;

use std::time::{Duration, Instant};

use support::*;

async fn body_and_status(c: &reqwest::Client, u: &str) -> (String, String) {
    let r = c.get(u).send().await.unwrap();
    let cs = cache_status(&r);
    (r.text().await.unwrap(), cs)
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_then_refreshes() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/swr", |_, n| {
        if n == 0 {
            resp(
                200,
                "v0",
                &[
                    ("cache-control", "max-age=1, stale-while-revalidate=60"),
                    ("age", "5"),
                ],
            )
        } else {
            resp(200, &format!("v{n}"), &[("cache-control", "max-age=600")])
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    let u = url(&edge, "/swr");
    assert_eq!(body_and_status(&c, &u).await.0, "v0");
    let (body, cs) = body_and_status(&c, &u).await;
    assert_eq!(body, "v0", "stale content is served at once");
    assert!(cs.contains("stale-while-revalidate"), "{cs}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (body, cs) = body_and_status(&c, &u).await;
        if body == "v1" {
            assert!(cs.starts_with("waypost; hit"), "{cs}");
            break;
        }
        assert!(Instant::now() < deadline, "background refresh never landed");
        tokio::task::yield_now().await;
    }
    assert_eq!(origin.hits("/swr"), 2);
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_is_down_or_failing() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/sie", |_, n| {
        if n == 0 {
            resp(
                200,
                "cached",
                &[
                    ("cache-control", "max-age=1, stale-if-error=600"),
                    ("age", "5"),
                ],
            )
        } else {
            resp(503, "down", &[])
        }
    });
    origin.route("/strict", |_, n| {
        if n == 0 {
            resp(
                200,
                "cached",
                &[
                    ("cache-control", "max-age=1, must-revalidate"),
                    ("age", "5"),
                ],
            )
        } else {
            resp(503, "down", &[])
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for p in ["/sie", "/strict"] {
        c.get(url(&edge, p)).send().await.unwrap();
    }
    // The origin answers 503: stale wins unless must-revalidate forbids it.
    let r = c.get(url(&edge, "/sie")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        cache_status(&r).contains("stale-if-error"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(
        c.get(url(&edge, "/strict")).send().await.unwrap().status(),
        503
    );
    // The origin is gone altogether.
    origin.stop();
    let r = c.get(url(&edge, "/sie")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "cached");
    assert_eq!(
        c.get(url(&edge, "/strict")).send().await.unwrap().status(),
        502
    );
}

async fn purge(
    c: &reqwest::Client,
    edge: &edge_node::RunningServer,
    query: &str,
) -> serde_json::Value {
    let r = c
        .post(format!("http://{}/purge?{query}", edge.admin_addr()))
        .bearer_auth("test-admin-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_purge_during_revalidation_is_not_undone_by_the_304() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/r", |seen, _| {
        if seen.headers.contains_key("if-none-match") {
            resp(
                304,
                "",
                &[("etag", "\"r\""), ("cache-control", "max-age=600")],
            )
        } else {
            resp(
                200,
                "full",
                &[("etag", "\"r\""), ("cache-control", "max-age=0")],
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    assert_eq!(
        c.get(url(&edge, "/r"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "full"
    );
    origin.delay("/r", std::time::Duration::from_millis(300));
    let revalidating = {
        let (c, u) = (c.clone(), url(&edge, "/r"));
        tokio::spawn(async move { c.get(u).send().await.unwrap().text().await.unwrap() })
    };
    while origin.hits("/r") < 2 {
        tokio::task::yield_now().await;
    }
    let host = edge.http_addr().unwrap();
    let out = purge(&c, &edge, &format!("url=http://{host}/r")).await;
    assert_eq!(out["purged"], 1);
    assert_eq!(revalidating.await.unwrap(), "full");
    let seen = origin.seen("/r");
    assert_eq!(seen.len(), 3, "the purged object was fetched again in full");
    assert!(!seen[2].headers.contains_key("if-none-match"));
}

#[tokio::test]
async fn purge_by_url_and_by_surrogate_key() {
    let origin = ScriptedOrigin::start().await;
    for p in ["/p1", "/p2", "/p3"] {
        let key = if p == "/p3" {
            "other"
        } else {
            "group-a shared"
        };
        let key = key.to_string();
        origin.route(p, move |_, n| {
            resp(
                200,
                &format!("v{n}"),
                &[("cache-control", "max-age=600"), ("surrogate-key", &key)],
            )
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for p in ["/p1", "/p2", "/p3"] {
        let r = c.get(url(&edge, p)).send().await.unwrap();
        assert!(
            r.headers().get("surrogate-key").is_none(),
            "surrogate keys are not shown to clients"
        );
    }
    let unauth = c
        .post(format!("http://{}/purge?key=x", edge.admin_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);

    let host = edge.http_addr().unwrap();
    let out = purge(&c, &edge, &format!("url=http://{host}/p1")).await;
    assert_eq!(out["purged"], 1);
    assert_eq!(body_and_status(&c, &url(&edge, "/p1")).await.0, "v1");
    assert_eq!(body_and_status(&c, &url(&edge, "/p3")).await.0, "v0");

    let out = purge(&c, &edge, "key=shared").await;
    assert_eq!(out["purged"], 2);
    assert_eq!(body_and_status(&c, &url(&edge, "/p1")).await.0, "v2");
    assert_eq!(body_and_status(&c, &url(&edge, "/p2")).await.0, "v1");
    assert_eq!(
        body_and_status(&c, &url(&edge, "/p3")).await.0,
        "v0",
        "other keys untouched"
    );
}

#[tokio::test]
async fn soft_purge_marks_stale_and_revalidates() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/soft", |seen, _| {
        if seen.headers.get("if-none-match").is_some() {
            resp(
                304,
                "",
                &[("etag", "\"e1\""), ("cache-control", "max-age=600")],
            )
        } else {
            resp(
                200,
                "content",
                &[
                    ("etag", "\"e1\""),
                    ("cache-control", "max-age=600"),
                    ("surrogate-key", "k"),
                ],
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    body_and_status(&c, &url(&edge, "/soft")).await;
    let out = purge(&c, &edge, "key=k&soft=true").await;
    assert_eq!(out["purged"], 1);
    let (body, cs) = body_and_status(&c, &url(&edge, "/soft")).await;
    assert_eq!(body, "content");
    assert!(
        cs.contains("fwd-status=304"),
        "soft purge revalidates: {cs}"
    );
    assert_eq!(
        origin.seen("/soft")[1]
            .headers
            .get("if-none-match")
            .unwrap(),
        "\"e1\""
    );
    let (_, cs) = body_and_status(&c, &url(&edge, "/soft")).await;
    assert!(cs.starts_with("waypost; hit"), "{cs}");
}

#[tokio::test]
async fn successful_unsafe_methods_invalidate_the_url_and_location() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/items", |seen, n| {
        if seen.method == http::Method::POST {
            resp(201, "created", &[("location", "/items/7")])
        } else {
            resp(
                200,
                &format!("list{n}"),
                &[("cache-control", "max-age=600")],
            )
        }
    });
    origin.route("/items/7", |_, n| {
        resp(
            200,
            &format!("item{n}"),
            &[("cache-control", "max-age=600")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    assert_eq!(body_and_status(&c, &url(&edge, "/items")).await.0, "list0");
    assert_eq!(
        body_and_status(&c, &url(&edge, "/items/7")).await.0,
        "item0"
    );
    let r = c
        .post(url(&edge, "/items"))
        .body("new item")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        origin.seen("/items")[1].body,
        "new item",
        "request bodies are forwarded"
    );
    assert_eq!(body_and_status(&c, &url(&edge, "/items")).await.0, "list2");
    assert_eq!(
        body_and_status(&c, &url(&edge, "/items/7")).await.0,
        "item1"
    );
}
