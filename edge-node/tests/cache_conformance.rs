//! RFC 9111 requirements that http-cache-semantics alone gets wrong,
//! through a real edge in front of a scripted origin: storable statuses
//! (§3, §4.2.2, §5.2.2.3), HTTP date forms (RFC 9110 §5.6.7), unknown
//! request directives (§5.2.3), Vary matching after normalisation (§4.1),
//! and the determinism of revalidation paths under concurrency.

mod support;

use support::*;

async fn get_with(c: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut b = c.get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.send().await.unwrap()
}

/// Requests `path` twice and returns how often the origin saw it.
async fn twice(
    c: &reqwest::Client,
    edge: &edge_node::RunningServer,
    o: &ScriptedOrigin,
    path: &str,
) -> usize {
    for _ in 0..2 {
        get_with(c, &url(edge, path), &[])
            .await
            .text()
            .await
            .unwrap();
    }
    o.hits(path)
}

/// Waits until the origin has seen `path` `n` times (a background fetch).
async fn until_hits(o: &ScriptedOrigin, path: &str, n: usize) {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while o.hits(path) < n {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path}: origin saw {} requests, want {n}", o.hits(path)));
}

#[tokio::test]
async fn any_final_status_with_explicit_freshness_is_stored_and_served() {
    let origin = ScriptedOrigin::start().await;
    let statuses = [203u16, 299, 400, 404, 410, 499, 500, 502, 503, 504, 599];
    for s in statuses {
        origin.route(&format!("/s{s}"), move |_, n| {
            resp(s, &format!("v{n}"), &[("cache-control", "max-age=600")])
        });
    }
    origin.route("/s500-smax", |_, n| {
        resp(500, &format!("v{n}"), &[("cache-control", "s-maxage=600")])
    });
    origin.route("/s503-expires", |_, n| {
        resp(
            503,
            &format!("v{n}"),
            &[("expires", "Fri, 01 Jan 2100 00:00:00 GMT")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for s in statuses {
        let p = format!("/s{s}");
        get_with(&c, &url(&edge, &p), &[])
            .await
            .text()
            .await
            .unwrap();
        let r = get_with(&c, &url(&edge, &p), &[]).await;
        assert_eq!(r.status().as_u16(), s, "{p}: the stored status is served");
        assert!(
            cache_status(&r).starts_with("waypost; hit"),
            "{p}: {}",
            cache_status(&r)
        );
        assert_eq!(r.text().await.unwrap(), "v0");
        assert_eq!(origin.hits(&p), 1, "{p}");
    }
    assert_eq!(twice(&c, &edge, &origin, "/s500-smax").await, 1);
    assert_eq!(twice(&c, &edge, &origin, "/s503-expires").await, 1);
}

#[tokio::test]
async fn heuristic_freshness_only_for_heuristically_cacheable_statuses() {
    let origin = ScriptedOrigin::start().await;
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    for s in [404u16, 500, 503, 299] {
        origin.route(&format!("/h{s}"), move |_, n| {
            resp(s, &format!("v{n}"), &[("last-modified", old)])
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    assert_eq!(
        twice(&c, &edge, &origin, "/h404").await,
        1,
        "404 is heuristically cacheable"
    );
    for p in ["/h500", "/h503", "/h299"] {
        assert_eq!(twice(&c, &edge, &origin, p).await, 2, "{p}: no heuristics");
    }
}

#[tokio::test]
async fn must_understand_stores_understood_statuses_despite_no_store() {
    let origin = ScriptedOrigin::start().await;
    for s in [200u16, 404, 500, 299, 599] {
        origin.route(&format!("/mu{s}"), move |_, n| {
            resp(
                s,
                &format!("v{n}"),
                &[("cache-control", "must-understand, no-store, max-age=600")],
            )
        });
    }
    origin.route("/mu-unknown-no-nostore", |_, n| {
        resp(
            599,
            &format!("v{n}"),
            &[("cache-control", "must-understand, max-age=600")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for p in ["/mu200", "/mu404", "/mu500"] {
        assert_eq!(
            twice(&c, &edge, &origin, p).await,
            1,
            "{p}: understood, no-store ignored"
        );
    }
    for p in ["/mu299", "/mu599", "/mu-unknown-no-nostore"] {
        assert_eq!(
            twice(&c, &edge, &origin, p).await,
            2,
            "{p}: not understood, not stored"
        );
    }
}

#[tokio::test]
async fn dates_in_every_form_and_case_are_read_and_invalid_expires_is_past() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/exp-lower", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("expires", "fri, 01 jan 2100 00:00:00 gmt")],
        )
    });
    origin.route("/exp-asctime", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("expires", "Fri Jan  1 00:00:00 2100")],
        )
    });
    origin.route("/exp-rfc850", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("expires", "friday, 01-Jan-99 00:00:00 GMT"),
                ("date", "Thursday, 31-Dec-98 23:00:00 GMT"),
            ],
        )
    });
    // A lower-case Date an hour before Expires: fresh for an hour from
    // the origin's clock, though both lie in the past.
    origin.route("/date-lower", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("date", "sun, 06 nov 1994 08:49:37 gmt"),
                ("expires", "Sun, 06 Nov 1994 09:49:37 GMT"),
            ],
        )
    });
    // Heuristic freshness from an asctime Last-Modified.
    origin.route("/lm-asctime", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("last-modified", "Mon Jan  1 00:00:00 2001")],
        )
    });
    for (p, v) in [
        ("/exp-zero", "0"),
        ("/exp-garbage", "soon"),
        ("/exp-neg", "-1"),
    ] {
        origin.route(p, move |_, n| {
            resp(200, &format!("v{n}"), &[("expires", v)])
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for p in [
        "/exp-lower",
        "/exp-asctime",
        "/exp-rfc850",
        "/date-lower",
        "/lm-asctime",
    ] {
        assert_eq!(
            twice(&c, &edge, &origin, p).await,
            1,
            "{p}: date understood"
        );
    }
    for p in ["/exp-zero", "/exp-garbage", "/exp-neg"] {
        assert_eq!(
            twice(&c, &edge, &origin, p).await,
            2,
            "{p}: invalid Expires is already expired"
        );
    }
}

#[tokio::test]
async fn unknown_request_directives_are_ignored() {
    let origin = ScriptedOrigin::start().await;
    // Stale on arrival (Age) but inside stale-while-revalidate; the
    // refreshed copy is fresh.
    for p in ["/swr-cc", "/swr-pragma"] {
        origin.route(p, |_, n| {
            let age = if n == 0 { "61" } else { "0" };
            resp(
                200,
                &format!("v{n}"),
                &[
                    ("cache-control", "max-age=60, stale-while-revalidate=600"),
                    ("age", age),
                ],
            )
        });
    }
    origin.route("/fresh", |_, n| {
        resp(200, &format!("v{n}"), &[("cache-control", "max-age=600")])
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(
        &[origin.addr],
        dir.path(),
        "honor_client_cache_control = true",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    for (p, h) in [
        ("/swr-cc", ("cache-control", "foo")),
        ("/swr-pragma", ("pragma", "foo")),
    ] {
        get_with(&c, &url(&edge, p), &[])
            .await
            .text()
            .await
            .unwrap();
        let r = get_with(&c, &url(&edge, p), &[h]).await;
        let cs = cache_status(&r);
        assert!(cs.contains("stale-while-revalidate"), "{p}: {cs}");
        assert_eq!(
            r.text().await.unwrap(),
            "v0",
            "{p}: the stale copy, at once"
        );
        until_hits(&origin, p, 2).await;
        // The origin has answered; wait until the edge has stored that
        // answer (requests meanwhile get the stale copy and start no
        // second revalidation).
        let refreshed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                let r = get_with(&c, &url(&edge, p), &[h]).await;
                let cs = cache_status(&r);
                if r.text().await.unwrap() == "v1" {
                    return cs;
                }
            }
        })
        .await
        .expect("the background revalidation is stored");
        assert!(
            refreshed.starts_with("waypost; hit") && !refreshed.contains("stale"),
            "{p}: {refreshed}"
        );
        assert_eq!(origin.hits(p), 2, "{p}: one background revalidation");
    }
    // Unknown directives on a fresh object, and Pragma beside Cache-Control.
    get_with(&c, &url(&edge, "/fresh"), &[])
        .await
        .text()
        .await
        .unwrap();
    for h in [
        &[("cache-control", "foo, bar=\"baz\"")][..],
        &[("pragma", "foo")],
        &[("cache-control", "max-age=600"), ("pragma", "no-cache")],
    ] {
        let r = get_with(&c, &url(&edge, "/fresh"), h).await;
        assert!(
            cache_status(&r).starts_with("waypost; hit"),
            "{h:?}: {}",
            cache_status(&r)
        );
    }
    assert_eq!(origin.hits("/fresh"), 1);
}

#[tokio::test]
async fn vary_matches_after_normalisation() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/lang", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("vary", "Accept-Language"),
            ],
        )
    });
    origin.route("/accept", |_, n| {
        resp(
            200,
            &format!("v{n}"),
            &[("cache-control", "max-age=600"), ("vary", "accept")],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    let lang = |v: &'static str| [("accept-language", v)];
    get_with(&c, &url(&edge, "/lang"), &lang("en-US,fr;q=0.5"))
        .await
        .text()
        .await
        .unwrap();
    for same in [
        "fr;q=0.50, EN-us",
        "en-us;q=1.0 ,  fr ; q=0.500",
        "en-US, fr;q=0.5",
    ] {
        let r = get_with(&c, &url(&edge, "/lang"), &lang(same)).await;
        assert!(
            cache_status(&r).starts_with("waypost; hit"),
            "{same}: {}",
            cache_status(&r)
        );
    }
    assert_eq!(origin.hits("/lang"), 1);
    get_with(&c, &url(&edge, "/lang"), &lang("fr, en-US;q=0.5"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        origin.hits("/lang"),
        2,
        "a different preference is another variant"
    );
    let seen = origin.seen("/lang");
    assert_eq!(
        seen[0].headers["accept-language"], "en-us, fr;q=0.5",
        "the origin sees the normalized value"
    );

    let accept = |v: &'static str| [("accept", v)];
    get_with(&c, &url(&edge, "/accept"), &accept("text/html,image/png"))
        .await
        .text()
        .await
        .unwrap();
    let r = get_with(
        &c,
        &url(&edge, "/accept"),
        &accept("text/html ,  image/png"),
    )
    .await;
    assert!(
        cache_status(&r).starts_with("waypost; hit"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(origin.hits("/accept"), 1);
}

/// Revalidation of a stale must-revalidate response and of a Vary-ed one,
/// twenty rounds at once: every round must see the same outcome.
/// `max_fills` is raised so that the bound on concurrent downloads (a
/// miss beyond it passes to the origin by design) is not what is tested.
#[tokio::test]
async fn revalidation_paths_are_deterministic_under_concurrency() {
    let origin = ScriptedOrigin::start().await;
    for i in 0..20 {
        for kind in ["mr", "vary"] {
            origin.route(&format!("/{kind}{i}"), move |seen, n| {
                let mut h = vec![
                    ("cache-control", "max-age=0, must-revalidate"),
                    ("etag", "\"e\""),
                ];
                if kind == "vary" {
                    h.push(("vary", "accept-language"));
                }
                if seen
                    .headers
                    .get("if-none-match")
                    .is_some_and(|v| v == "\"e\"")
                {
                    return resp(304, "", &h);
                }
                resp(200, &format!("v{n}"), &h)
            });
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[origin.addr], dir.path(), "")
        .replace("fall = 1\n", "fall = 1\nmax_fills = 1000\n");
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    let rounds = (0..20)
        .flat_map(|i| ["mr", "vary"].map(move |k| (i, k)))
        .map(|(i, kind)| {
            let (c, u) = (c.clone(), url(&edge, &format!("/{kind}{i}")));
            async move {
                let h = [("accept-language", "en")];
                let mut bodies = Vec::new();
                for _ in 0..3 {
                    let r = get_with(&c, &u, &h).await;
                    bodies.push((r.status().as_u16(), r.text().await.unwrap()));
                }
                (u, bodies)
            }
        });
    for (u, bodies) in futures::future::join_all(rounds).await {
        let path = u.rsplit_once('/').map(|(_, p)| format!("/{p}")).unwrap();
        let seen = origin.seen(&path);
        assert_eq!(
            bodies,
            vec![(200, "v0".to_string()); 3],
            "{u}: origin saw {:?}",
            seen.iter()
                .map(|s| s.headers.get("if-none-match"))
                .collect::<Vec<_>>()
        );
        assert_eq!(seen.len(), 3, "{u}: every use revalidated");
        for s in &seen[1..] {
            assert_eq!(
                s.headers.get("if-none-match").map(|v| v.as_bytes()),
                Some(&b"\"e\""[..]),
                "{u}: conditional"
            );
        }
    }
}

/// An origin that answers every request with a 103 carrying caching
/// fields of its own, then a 200; counts requests for `/interim`.
async fn interim_origin() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        if head.starts_with("GET /interim") {
                            let n = counter.fetch_add(1, Ordering::SeqCst);
                            let reply = format!(
                                "HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\
                                 cache-control: no-store\r\nx-interim: 1\r\n\r\n\
                                 HTTP/1.1 200 OK\r\ncache-control: max-age=600\r\n\
                                 content-length: 2\r\n\r\nv{n}"
                            );
                            if tcp.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        } else if tcp
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn interim_responses_are_neither_stored_nor_merged() {
    let (addr, hits) = interim_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[addr], dir.path(), ""), dir.path()).await;
    let c = client();
    for _ in 0..2 {
        let r = get_with(&c, &url(&edge, "/interim"), &[]).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers().get("x-interim").is_none(),
            "1xx fields merged: {:?}",
            r.headers()
        );
        assert_eq!(r.headers()["cache-control"], "max-age=600");
        assert_eq!(r.text().await.unwrap(), "v0");
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the final response was stored; the 103's no-store did not count"
    );
}

#[tokio::test]
async fn only_if_cached_never_reaches_the_origin() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/oic", |_, n| {
        resp(200, &format!("v{n}"), &[("cache-control", "max-age=600")])
    });
    origin.route("/oic-stale", |_, n| {
        resp(200, &format!("v{n}"), &[("cache-control", "max-age=0")])
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    let oic = [("cache-control", "only-if-cached")];
    let r = get_with(&c, &url(&edge, "/oic"), &oic).await;
    assert_eq!(r.status(), 504, "not stored yet");
    assert_eq!(origin.hits("/oic"), 0);
    get_with(&c, &url(&edge, "/oic"), &[])
        .await
        .text()
        .await
        .unwrap();
    let r = get_with(&c, &url(&edge, "/oic"), &oic).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "v0");
    get_with(&c, &url(&edge, "/oic-stale"), &[])
        .await
        .text()
        .await
        .unwrap();
    let r = get_with(&c, &url(&edge, "/oic-stale"), &oic).await;
    assert_eq!(r.status(), 504, "stored but stale");
    assert_eq!((origin.hits("/oic"), origin.hits("/oic-stale")), (1, 1));
}

#[tokio::test]
async fn a_stored_error_status_is_served_stale_as_its_directives_allow() {
    // RFC 9111 §4.2.4: any stored response may be served stale where
    // allowed, whatever its status: a 404 and a 503 with explicit
    // freshness, already stale (Age past max-age), with stale-if-error.
    let origin = ScriptedOrigin::start().await;
    for (path, status) in [("/missing", 404u16), ("/maintenance", 503)] {
        origin.route(path, move |_, n| {
            if n == 0 {
                resp(
                    status,
                    "stored error page",
                    &[
                        ("cache-control", "max-age=1, stale-if-error=600"),
                        ("age", "5"),
                    ],
                )
            } else {
                resp(500, "broken", &[])
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&origin, dir.path()).await;
    let c = client();
    for (path, status) in [("/missing", 404u16), ("/maintenance", 503)] {
        let first = get_with(&c, &url(&edge, path), &[]).await;
        assert_eq!(first.status(), status);
        first.text().await.unwrap();
        // Stale on arrival: the edge revalidates, the origin answers 500,
        // and the stored error page is served stale instead.
        let r = get_with(&c, &url(&edge, path), &[]).await;
        assert_eq!(r.status(), status, "{path}");
        assert!(
            cache_status(&r).contains("stale-if-error"),
            "{path}: {}",
            cache_status(&r)
        );
        assert_eq!(r.text().await.unwrap(), "stored error page");
        assert_eq!(origin.hits(path), 2, "{path}");
    }
}
