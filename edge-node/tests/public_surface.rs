//! Issue 9: what a stranger can do to an edge that faces the internet.
//! Each test is an attack or a careless request that used to work: forged
//! forwarding fields, spellings of one path that routed apart, client
//! directives that turned hits into origin traffic, methods that echo or
//! tunnel, error bodies that named internals, configs copied from the docs.

mod support;

use support::{ScriptedOrigin, cache_status, client, edge_toml, resp, start_edge_with, url};

fn fresh(
    body: &'static str,
) -> impl Fn(&support::Seen, usize) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    move |_, _| resp(200, body, &[("cache-control", "max-age=600")])
}

#[tokio::test]
async fn forged_forwarding_and_waypost_fields_never_reach_the_origin() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/a", fresh("a"));
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[origin.addr], dir.path(), ""), dir.path()).await;
    let forged = [
        ("forwarded", "for=1.2.3.4;host=evil.test;proto=https"),
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-prefix", "/admin"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-http-method-override", "DELETE"),
        ("x-waypost-client-ip", "10.0.0.1"),
        ("x-waypost-geo-country", "XX"),
        ("x-waypost-anything", "1"),
    ];
    let mut req = client().get(url(&edge, "/a"));
    for (k, v) in forged {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    let seen = &origin.seen("/a")[0].headers;
    for (k, v) in forged {
        assert!(
            seen.get_all(k).iter().all(|s| s != v),
            "{k}: {v} reached the origin: {seen:?}"
        );
    }
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-waypost-client-ip"], "127.0.0.1");
    assert_eq!(seen["host"], "127.0.0.1", "the routed host");
}

#[tokio::test]
async fn accept_encoding_spellings_share_a_variant_and_the_origin_sees_that_spelling() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/v", |seen, n| {
        let ae = seen
            .headers
            .get("accept-encoding")
            .map_or("none".to_string(), |v| v.to_str().unwrap().to_string());
        resp(
            200,
            &format!("{ae} #{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("vary", "Accept-Encoding"),
            ],
        )
    });
    origin.route("/bad-vary", |_, n| {
        resp(
            200,
            &format!("#{n}"),
            &[
                ("cache-control", "max-age=600"),
                ("vary", "accept, not a name"),
            ],
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[origin.addr], dir.path(), ""), dir.path()).await;
    let c = client();
    let mut bodies = Vec::new();
    for ae in ["gzip, br", "br,gzip", "BR;q=1.0, gzip;q=0.5, sdch"] {
        let r = c
            .get(url(&edge, "/v"))
            .header("accept-encoding", ae)
            .send()
            .await
            .unwrap();
        bodies.push(r.text().await.unwrap());
    }
    assert_eq!(origin.hits("/v"), 1, "one variant for one preference");
    assert!(bodies.iter().all(|b| b == "br, gzip #0"), "{bodies:?}");
    // A Vary member that is not a field name: treated as `Vary: *`.
    for _ in 0..2 {
        c.get(url(&edge, "/bad-vary")).send().await.unwrap();
    }
    assert_eq!(origin.hits("/bad-vary"), 2);
}

#[tokio::test]
async fn client_cache_directives_do_not_bypass_the_cache_unless_the_site_says_so() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/hot", fresh("hot"));
    origin.route("/honored/hot", fresh("hot"));
    let dir = tempfile::tempdir().unwrap();
    let extra = "[[sites]]\npool = \"main\"\npath_prefix = \"/honored\"\nhonor_client_cache_control = true\n";
    let edge = start_edge_with(&edge_toml(&[origin.addr], dir.path(), extra), dir.path()).await;
    let c = client();
    let bypass = [
        ("cache-control", "no-cache"),
        ("cache-control", "max-age=0"),
        ("pragma", "no-cache"),
        ("cache-control", "no-store"),
    ];
    for path in ["/hot", "/honored/hot"] {
        c.get(url(&edge, path)).send().await.unwrap();
        for (k, v) in bypass {
            c.get(url(&edge, path)).header(k, v).send().await.unwrap();
        }
    }
    assert_eq!(
        origin.hits("/hot"),
        1,
        "request directives ignored by default"
    );
    assert!(
        origin.hits("/honored/hot") > 1,
        "a site with honor_client_cache_control revalidates"
    );
}

#[tokio::test]
async fn routing_sees_one_spelling_of_each_path() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/hello", fresh("hello-site"));
    origin.route("/hellox", fresh("root-site"));
    origin.route("/b/c?q=%2F", fresh("c"));
    let other = ScriptedOrigin::start().await;
    other.route("/hello", fresh("wrong-site"));
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[other.addr], dir.path(), "")
        + &format!(
            "[[pools]]\nname = \"hello\"\norigins = [\"{}\"]\n[[sites]]\npool = \"hello\"\npath_prefix = \"/hello\"\n",
            origin.addr
        );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    for spelling in ["/hello", "/%68ello", "/x/../hello", "//hello", "/./hello"] {
        let r = c.get(url(&edge, spelling)).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "hello-site", "{spelling}");
    }
    assert!(origin.hits("/hello") >= 1 && other.hits("/hello") == 0);
    // `/hello` is a segment: `/hellox` belongs to the catch-all site.
    let r = c.get(url(&edge, "/hellox")).send().await.unwrap();
    assert_eq!(r.status(), 404, "the catch-all's origin has no /hellox");
    assert_eq!(origin.hits("/hellox"), 0);
    // Escapes that origins split differently are refused; the query is
    // left as sent.
    for bad in ["/hello%2Fx", "/hello%5Cx", "/hello%00", "/a%zz"] {
        let r = c.get(url(&edge, bad)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn methods_that_echo_or_tunnel_are_refused() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[origin.addr], dir.path(), ""), dir.path()).await;
    let c = client();
    let trace = c
        .request(http::Method::TRACE, url(&edge, "/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(trace.status(), 405);
    assert!(trace.headers().contains_key("allow"));
    let odd = c
        .request(
            http::Method::from_bytes(b"PROPFIND").unwrap(),
            url(&edge, "/x"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), 501);
    assert_eq!(origin.hits("/x"), 0);
}

#[tokio::test]
async fn an_unreachable_origin_is_not_named_in_the_error_body() {
    let origin = ScriptedOrigin::start().await;
    let addr = origin.addr;
    origin.stop();
    drop(origin);
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[addr], dir.path(), ""), dir.path()).await;
    let r = client().get(url(&edge, "/gone")).send().await.unwrap();
    assert!(r.status() == 502 || r.status() == 504, "{}", r.status());
    assert!(cache_status(&r).contains("origin-unreachable"));
    let body = r.text().await.unwrap();
    assert!(body.contains("request id"), "{body}");
    for secret in [addr.to_string(), addr.port().to_string(), "main".into()] {
        assert!(!body.contains(&secret), "`{secret}` in {body}");
    }
}

#[test]
fn admin_configs_copied_from_the_docs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = edge_toml(&["127.0.0.1:9".parse().unwrap()], dir.path(), "");
    let load = |toml: &str| edge_node::Config::from_toml(&dir.path().join("edge.toml"), toml);
    let placeholder = base.replace(
        "token = \"test-admin-token-0123456789\"",
        "token = \"change-me\"",
    );
    let err = load(&placeholder).unwrap_err().to_string();
    assert!(
        err.contains("admin.token") && err.contains("placeholder"),
        "{err}"
    );
    let public = base.replace(
        "listen = \"127.0.0.1:0\"\ntoken",
        "listen = \"0.0.0.0:0\"\ntoken",
    );
    let err = load(&public).unwrap_err().to_string();
    assert!(
        err.contains("admin.listen") && err.contains("allow_insecure"),
        "{err}"
    );
    let allowed = public.replace("[admin]\n", "[admin]\nallow_insecure = true\n");
    assert!(load(&allowed).is_ok());
    let odd_prefix = format!("{base}[[sites]]\npool = \"main\"\npath_prefix = \"/a//b\"\n");
    let err = load(&odd_prefix).unwrap_err().to_string();
    assert!(err.contains("path_prefix"), "{err}");
}

#[tokio::test]
async fn connect_is_refused_and_reaches_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[origin.addr], dir.path(), ""), dir.path()).await;
    let mut tcp = tokio::net::TcpStream::connect(edge.http_addr().unwrap())
        .await
        .unwrap();
    let target = origin.addr;
    tcp.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 64];
    let n = tcp.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert_eq!(origin.hits("/"), 0);
}

#[tokio::test]
async fn an_object_over_max_object_size_passes_through_uncached() {
    let origin = ScriptedOrigin::start().await;
    let big: &'static str = Box::leak("x".repeat(200 * 1024).into_boxed_str());
    origin.route("/big", fresh(big));
    origin.route("/small", fresh("small"));
    let dir = tempfile::tempdir().unwrap();
    let toml = edge_toml(&[origin.addr], dir.path(), "").replace(
        "max_memory_object = \"1MiB\"",
        "max_memory_object = \"64KiB\"\nmax_object_size = \"64KiB\"",
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(url(&edge, "/big")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap().len(), big.len(), "whole body");
        let r = c.get(url(&edge, "/small")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "small");
    }
    assert_eq!(
        origin.hits("/big"),
        2,
        "over max_object_size: fetched each time"
    );
    assert_eq!(origin.hits("/small"), 1, "under it: cached");
}

#[tokio::test]
async fn cache_files_are_readable_by_the_edge_alone() {
    use std::os::unix::fs::PermissionsExt;
    let origin = ScriptedOrigin::start().await;
    let body: &'static str = Box::leak("y".repeat(2 * 1024 * 1024).into_boxed_str());
    origin.route("/large", fresh(body));
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge_with(&edge_toml(&[origin.addr], dir.path(), ""), dir.path()).await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(url(&edge, "/large")).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), body.len());
    }
    assert_eq!(origin.hits("/large"), 1);
    let mut files = 0;
    let mut stack = vec![dir.path().join("cache")];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
                files += 1;
            }
        }
    }
    assert!(files >= 1, "the 2 MiB object is on disk");
}

#[test]
fn a_health_path_that_is_not_a_path_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let base = edge_toml(&["127.0.0.1:9".parse().unwrap()], dir.path(), "");
    for bad in ["healthz", "/health z", "http://elsewhere/healthz"] {
        let toml = base.replace(
            "health_interval",
            &format!("health_path = \"{bad}\"\nhealth_interval"),
        );
        let err = edge_node::Config::from_toml(&dir.path().join("edge.toml"), &toml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("health_path"), "{bad}: {err}");
    }
}
