//! HTTPS to origins: an HTTPS-only origin with a test CA (rcgen, made per
//! test) is fronted and cached; a certificate for another name or from
//! another CA is refused (502, origin marked down, the rustls reason
//! logged); `server_name` lets an IP-addressed origin be verified; mTLS
//! client certificates; h2 through ALPN.

mod listen_support;
mod support;
mod tls_origin;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use listen_support::{Pki, eventually};
use support::{cache_status, client, edge_toml, start_edge_with, url};
use tls_origin::{OriginTlsSetup, TlsOrigin};

const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];
const HTTP1: &[&[u8]] = &[b"http/1.1"];

/// An edge TOML whose pool `main` has the single origin `origin` (as
/// written, e.g. "https://localhost:1234") and `tls` as its inline `tls`
/// table body (none when empty).
fn toml_for(dir: &Path, origin: &str, tls: &str) -> String {
    let placeholder: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let toml = edge_toml(&[placeholder], dir, "");
    let mut origins = format!("origins = [\"{origin}\"]");
    if !tls.is_empty() {
        origins.push_str(&format!("\ntls = {{ {tls} }}"));
    }
    toml.replace(&format!("origins = [\"{placeholder}\"]"), &origins)
}

/// Writes the CA of `pki` to `dir/name` and returns the TOML-ready path.
fn write_ca(pki: &Pki, dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pki.ca_pem()).unwrap();
    path.display().to_string()
}

/// An HTTPS origin for `localhost` offering `alpn`, with a certificate
/// from `pki` (files in `dir`), and an edge (its files in `edge_dir`) that
/// fronts it, trusting `pki`'s CA.
async fn fronted(
    pki: &Pki,
    dir: &Path,
    edge_dir: &Path,
    alpn: &[&[u8]],
) -> (TlsOrigin, edge_node::RunningServer) {
    let leaf = pki.issue(dir, "origin", &["localhost"]);
    let ca = write_ca(pki, dir, "ca.pem");
    let origin = TlsOrigin::start(OriginTlsSetup {
        cert: &leaf.spec.cert,
        key: &leaf.spec.key,
        alpn,
        client_ca: None,
    })
    .await;
    let toml = toml_for(
        edge_dir,
        &format!("https://localhost:{}", origin.addr.port()),
        &format!("ca_file = \"{ca}\""),
    );
    let edge = start_edge_with(&toml, edge_dir).await;
    (origin, edge)
}

async fn metrics(edge: &edge_node::RunningServer) -> String {
    client()
        .get(format!("http://{}/metrics", edge.admin_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Log lines written while the guard lives, on this (current-thread
/// runtime's) thread, where the edge's tasks run.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_https_only_origin_is_fronted_and_its_asset_cached() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (origin, edge) = fronted(&pki, dir.path(), dir.path(), BOTH).await;
    let c = client();
    let first = c.get(url(&edge, "/asset.txt")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.text().await.unwrap(), "asset over tls");
    let second = c.get(url(&edge, "/asset.txt")).send().await.unwrap();
    assert_eq!(second.status(), 200);
    assert!(
        cache_status(&second).contains("hit"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(second.text().await.unwrap(), "asset over tls");
    assert_eq!(origin.hits("/asset.txt"), 1, "the second one was a hit");
    assert!(
        origin
            .handshakes()
            .iter()
            .all(|h| h.sni.as_deref() == Some("localhost")),
        "{:?}",
        origin.handshakes()
    );
    // Health checks go over TLS too and keep the origin up.
    eventually("a health check over TLS", || origin.hits("/healthz") > 0).await;
    let m = metrics(&edge).await;
    let up = format!(
        "waypost_edge_origin_up{{pool=\"main\",origin=\"localhost:{}\"}} 1",
        origin.addr.port()
    );
    assert!(m.contains(&up), "{m}");
}

/// Starts an origin with `leaf`, an edge trusting `trusted`, asks for the
/// asset and checks it is refused for a TLS reason containing `reason`,
/// with the operator hint mentioning `hint`.
async fn refused(dir: &Path, cert: &listen_support::Leaf, trusted: &Pki, reason: &str, hint: &str) {
    let logs = Captured::default();
    let _guard = logs.install();
    let origin = TlsOrigin::start(OriginTlsSetup {
        cert: &cert.spec.cert,
        key: &cert.spec.key,
        alpn: BOTH,
        client_ca: None,
    })
    .await;
    let ca = write_ca(trusted, dir, "trusted.pem");
    let toml = toml_for(
        dir,
        &format!("https://localhost:{}", origin.addr.port()),
        &format!("ca_file = \"{ca}\""),
    );
    let edge = start_edge_with(&toml, dir).await;
    let r = client().get(url(&edge, "/asset.txt")).send().await.unwrap();
    assert_eq!(
        r.status(),
        502,
        "a refused certificate is the origin's fault"
    );
    assert_eq!(origin.hits("/asset.txt"), 0, "no request went over it");
    let down = format!(
        "waypost_edge_origin_up{{pool=\"main\",origin=\"localhost:{}\"}} 0",
        origin.addr.port()
    );
    let m = metrics(&edge).await;
    assert!(m.contains(&down), "marked down at once:\n{m}");
    assert!(
        m.contains(
            "waypost_edge_origin_response_seconds_count{pool=\"main\",outcome=\"tls_error\"}"
        ),
        "{m}"
    );
    eventually("the health check's TLS failure logged", || {
        logs.text().contains("health check GET /healthz")
    })
    .await;
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("TLS to origin failed") && l.contains("health check"))
        .unwrap_or_else(|| panic!("{text}"));
    for part in [
        format!("https://localhost:{}", origin.addr.port()).as_str(),
        reason,
        hint,
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    assert!(
        origin.requests().is_empty(),
        "health checks never got past TLS"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let leaf = pki.issue(dir.path(), "other", &["other.example"]);
    refused(
        dir.path(),
        &leaf,
        &pki,
        "certificate not valid for name",
        "tls.server_name",
    )
    .await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (theirs, ours) = (Pki::named("their CA"), Pki::named("our CA"));
    let leaf = theirs.issue(dir.path(), "origin", &["localhost"]);
    refused(dir.path(), &leaf, &ours, "UnknownIssuer", "tls.ca_file").await;
}

#[tokio::test]
async fn server_name_verifies_an_ip_addressed_origin() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let leaf = pki.issue(dir.path(), "origin", &["origin.internal"]);
    let origin = TlsOrigin::start(OriginTlsSetup {
        cert: &leaf.spec.cert,
        key: &leaf.spec.key,
        alpn: BOTH,
        client_ca: None,
    })
    .await;
    let ca = write_ca(&pki, dir.path(), "ca.pem");
    let address = format!("https://{}", origin.addr);
    // Without the override the certificate does not name 127.0.0.1.
    let plain = start_edge_with(
        &toml_for(dir.path(), &address, &format!("ca_file = \"{ca}\"")),
        dir.path(),
    )
    .await;
    let r = client()
        .get(url(&plain, "/asset.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    plain.shutdown().await;

    let dir2 = tempfile::tempdir().unwrap();
    let toml = toml_for(
        dir2.path(),
        &address,
        &format!("ca_file = \"{ca}\", server_name = \"origin.internal\""),
    );
    let edge = start_edge_with(&toml, dir2.path()).await;
    let r = client().get(url(&edge, "/asset.txt")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "asset over tls");
    assert!(
        origin
            .handshakes()
            .iter()
            .any(|h| h.sni.as_deref() == Some("origin.internal")),
        "the override is sent as SNI: {:?}",
        origin.handshakes()
    );
}

#[tokio::test]
async fn mtls_origins_accept_the_edge_only_with_its_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let leaf = pki.issue(dir.path(), "origin", &["localhost"]);
    let client_leaf = pki.issue(dir.path(), "edge-client", &["edge.client"]);
    let origin = TlsOrigin::start(OriginTlsSetup {
        cert: &leaf.spec.cert,
        key: &leaf.spec.key,
        alpn: BOTH,
        client_ca: Some(pki.ca_der.clone()),
    })
    .await;
    let ca = write_ca(&pki, dir.path(), "ca.pem");
    let address = format!("https://localhost:{}", origin.addr.port());

    let without = start_edge_with(
        &toml_for(dir.path(), &address, &format!("ca_file = \"{ca}\"")),
        dir.path(),
    )
    .await;
    let r = client()
        .get(url(&without, "/asset.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502, "no client certificate, no answer");
    assert_eq!(origin.hits("/asset.txt"), 0);
    eventually("the origin refusing the handshake", || {
        !origin.failed_handshakes().is_empty()
    })
    .await;
    without.shutdown().await;

    let dir2 = tempfile::tempdir().unwrap();
    let tls = format!(
        "ca_file = \"{ca}\", client_cert_file = \"{}\", client_key_file = \"{}\"",
        client_leaf.spec.cert.display(),
        client_leaf.spec.key.display()
    );
    let edge = start_edge_with(&toml_for(dir2.path(), &address, &tls), dir2.path()).await;
    let r = client().get(url(&edge, "/asset.txt")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "asset over tls");
    assert!(origin.handshakes().iter().any(|h| h.client_cert));
}

#[tokio::test]
async fn h2_is_negotiated_when_the_origin_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    for (offered, want_alpn, want_version) in [
        (BOTH, b"h2".as_slice(), http::Version::HTTP_2),
        (HTTP1, b"http/1.1".as_slice(), http::Version::HTTP_11),
    ] {
        let d = tempfile::tempdir().unwrap();
        let (origin, edge) = fronted(&pki, dir.path(), d.path(), offered).await;
        let r = client().get(url(&edge, "/asset.txt")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let handshakes = origin.handshakes();
        assert!(
            !handshakes.is_empty()
                && handshakes
                    .iter()
                    .all(|h| h.alpn.as_deref() == Some(want_alpn)),
            "{handshakes:?}"
        );
        let served = origin.requests();
        let asset = served.iter().find(|s| s.path == "/asset.txt").unwrap();
        assert_eq!(asset.version, want_version);
        edge.shutdown().await;
    }
}

/// Responses passed through (not stored) leave the client side once their
/// promised length is written, and over HTTP/2 the origin's end of stream
/// may come after. Abandoning the stream there reset it (RST_STREAM), and
/// the frames already in flight for it count against h2's limit of 1,024
/// resets per connection, after which the connection to the origin was
/// torn down with every request on it (502s in `bench/cache_hit.sh`'s
/// `miss_tls`). The edge reads those ends instead: every stream ends
/// normally, none is reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passed_responses_do_not_wear_out_the_h2_connection() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (origin, edge) = fronted(&pki, dir.path(), dir.path(), BOTH).await;
    let http = client();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (http, target) = (http.clone(), url(&edge, "/pass"));
            tokio::spawn(async move {
                let mut failed = Vec::new();
                for _ in 0..40 {
                    let r = http.get(&target).send().await.unwrap();
                    let status = r.status();
                    let body = r.text().await.unwrap();
                    if status != 200 || body != "passed" {
                        failed.push(format!("{status} {body}"));
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = Vec::new();
    for w in workers {
        failed.extend(w.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} of 640 passed requests failed, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert_eq!(origin.hits("/pass"), 640);
    // The drains finish within LATE_END of the last answer.
    eventually("every /pass stream to end normally", || {
        origin.pass_ends() == 640
    })
    .await;
    // The pool's connection (and the health checks', if apart) carried
    // them all: none was torn down and opened again.
    let handshakes = origin.handshakes().len();
    assert!(handshakes <= 2, "{handshakes} TLS handshakes");
    edge.shutdown().await;
}

/// `admin.tls = true` serves the admin API (purges and their token) over
/// TLS with the `[tls]` certificates, so it may listen off loopback
/// without `allow_insecure`; plaintext is not answered there.
#[tokio::test]
async fn the_admin_api_is_served_over_tls_and_may_listen_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let leaf = pki.issue(dir.path(), "admin", &["admin.test"]);
    let base = edge_toml(&["127.0.0.1:9".parse().unwrap()], dir.path(), "");
    let tls_section = format!(
        "[tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\n",
        leaf.spec.cert.display(),
        leaf.spec.key.display()
    );
    let toml = format!(
        "{}{tls_section}",
        base.replace("[admin]\n", "[admin]\ntls = true\n")
    );
    let edge = start_edge_with(&toml, dir.path()).await;
    let admin = edge.admin_addr();
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_der(&pki.ca_der).unwrap())
        .resolve("admin.test", admin)
        .build()
        .unwrap();
    let r = https
        .get(format!("https://admin.test:{}/healthz", admin.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let plain = client().get(format!("http://{admin}/healthz")).send().await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| r.status() != 200),
        "plaintext is not served on a TLS admin listener"
    );
    edge.shutdown().await;

    let load = |toml: &str| edge_node::Config::from_toml(&dir.path().join("edge.toml"), toml);
    let anywhere = toml.replace(
        "[admin]\ntls = true\nlisten = \"127.0.0.1:0\"",
        "[admin]\ntls = true\nlisten = \"0.0.0.0:0\"",
    );
    assert_ne!(anywhere, toml);
    assert!(load(&anywhere).is_ok(), "off loopback with TLS is fine");
    let err = load(&anywhere.replace("[admin]\ntls = true\n", "[admin]\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin.tls"), "{err}");
    let err = load(&base.replace("[admin]\n", "[admin]\ntls = true\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`admin.tls` is set but there is no [tls]"),
        "{err}"
    );
}
