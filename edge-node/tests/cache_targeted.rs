//! RFC 9213 targeted cache control through a real edge: `CDN-Cache-Control`
//! and `Waypost-CDN-Cache-Control` decide this cache's storage and
//! freshness in place of `Cache-Control` and `Expires`, while clients still
//! receive the origin's fields (unless the site strips the targeted ones).

mod support;

use support::*;

async fn get(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.get(url).send().await.unwrap()
}

/// Requests `path` twice and returns how often the origin saw it.
async fn twice(
    c: &reqwest::Client,
    edge: &edge_node::RunningServer,
    o: &ScriptedOrigin,
    path: &str,
) -> usize {
    for _ in 0..2 {
        let r = get(c, &url(edge, path)).await;
        r.text().await.unwrap();
    }
    o.hits(path)
}

#[tokio::test]
async fn targeted_field_overrides_cache_control_for_this_cache_only() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/cdn", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
        )
    });
    // The Waypost field comes first and forbids what CDN-Cache-Control allows.
    origin.route("/ours-first", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("waypost-cdn-cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
        )
    });
    origin.route("/cdn-private", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "private"),
            ],
        )
    });
    origin.route("/cdn-s-maxage", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "max-age=600, s-maxage=0"),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();

    let first = get(&c, &url(&edge, "/cdn")).await;
    assert_eq!(
        first.headers()["cache-control"],
        "no-store",
        "client gets the origin's Cache-Control"
    );
    assert_eq!(
        first.headers()["cdn-cache-control"],
        "max-age=600",
        "forwarded unchanged"
    );
    first.text().await.unwrap();
    let second = get(&c, &url(&edge, "/cdn")).await;
    assert!(
        cache_status(&second).starts_with("waypost; hit"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(second.headers()["cdn-cache-control"], "max-age=600");
    assert_eq!(second.text().await.unwrap(), "v0");
    assert_eq!(origin.hits("/cdn"), 1);

    assert_eq!(
        twice(&c, &edge, &origin, "/ours-first").await,
        2,
        "Waypost-CDN-Cache-Control: no-store wins"
    );
    assert_eq!(
        twice(&c, &edge, &origin, "/cdn-private").await,
        2,
        "targeted private is not stored"
    );
    assert_eq!(
        twice(&c, &edge, &origin, "/cdn-s-maxage").await,
        2,
        "targeted s-maxage=0 beats max-age"
    );
}

#[tokio::test]
async fn invalid_targeted_field_is_ignored_as_a_whole() {
    let origin = ScriptedOrigin::start().await;
    // Not a Dictionary (unterminated string): Cache-Control decides.
    origin.route("/bad-cc-store", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "max-age=\"600"),
            ],
        )
    });
    origin.route("/bad-cc-nostore", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "Max-Age=600"),
            ],
        )
    });
    // An invalid first field falls through to the next valid one.
    origin.route("/fallthrough", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "no-store"),
                ("waypost-cdn-cache-control", "max-age=600,,"),
                ("cdn-cache-control", "max-age=600"),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    assert_eq!(twice(&c, &edge, &origin, "/bad-cc-store").await, 1);
    assert_eq!(twice(&c, &edge, &origin, "/bad-cc-nostore").await, 2);
    assert_eq!(twice(&c, &edge, &origin, "/fallthrough").await, 1);
}

#[tokio::test]
async fn targeted_freshness_subtracts_age_and_ignores_expires() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/aged", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cdn-cache-control", "max-age=60"), ("age", "61")],
        )
    });
    origin.route("/expired", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cdn-cache-control", "max-age=600"),
                ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ],
        )
    });
    // With a targeted field, a future Expires alone gives no freshness.
    origin.route("/expires-only", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cdn-cache-control", "must-revalidate"),
                ("expires", "Fri, 01 Jan 2100 00:00:00 GMT"),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    assert_eq!(
        twice(&c, &edge, &origin, "/aged").await,
        2,
        "Age counts against the targeted max-age"
    );
    assert_eq!(
        twice(&c, &edge, &origin, "/expired").await,
        1,
        "Expires is ignored"
    );
    assert_eq!(
        twice(&c, &edge, &origin, "/expires-only").await,
        2,
        "Expires is ignored"
    );
}

#[tokio::test]
async fn targeted_no_cache_revalidates_every_time() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/nc", |seen, n| {
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"e\"")
        {
            return resp(
                304,
                "",
                &[("etag", "\"e\""), ("cdn-cache-control", "no-cache")],
            );
        }
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "no-cache"),
                ("etag", "\"e\""),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for _ in 0..3 {
        let r = get(&c, &url(&edge, "/nc")).await;
        assert_eq!(r.text().await.unwrap(), "v0");
    }
    let seen = origin.seen("/nc");
    assert_eq!(seen.len(), 3, "no-cache: every use is validated");
    assert!(
        seen[1].headers.get("if-none-match").is_some(),
        "a conditional request, not a refetch"
    );
}

#[tokio::test]
async fn site_may_strip_targeted_fields_and_operator_may_turn_targeting_off() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/s", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
                ("waypost-cdn-cache-control", "max-age=600"),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(
        &[origin.addr],
        dir.path(),
        "strip_targeted_cache_control = true",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    for _ in 0..2 {
        let r = get(&c, &url(&edge, "/s")).await;
        assert!(r.headers().get("cdn-cache-control").is_none());
        assert!(r.headers().get("waypost-cdn-cache-control").is_none());
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.text().await.unwrap();
    }
    assert_eq!(origin.hits("/s"), 1, "stripped for clients, still obeyed");

    let dir2 = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[origin.addr], dir2.path(), "")
        .replace("[cache]\n", "[cache]\ntargeted_fields = []\n");
    let edge = start_edge_with(&toml, dir2.path()).await;
    let before = origin.hits("/s");
    assert_eq!(
        twice(&c, &edge, &origin, "/s").await - before,
        2,
        "targeting off: Cache-Control no-store decides"
    );
}
