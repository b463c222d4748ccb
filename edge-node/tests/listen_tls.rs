//! `edge_node::listen` over TLS: SNI selection, ALPN, reload, handshakes.

mod listen_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_node::listen::{LimitKind, Limits, TlsAcceptor, TlsError, TlsSettings};
use listen_support::{Leaf, PATIENCE, Pki, TestServer, eventually, exchange, write_atomically};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

struct Fixture {
    _dir: tempfile::TempDir,
    pki: Pki,
    a: Leaf,
    b: Leaf,
    settings: TlsSettings,
}

/// Two certificates: `a.test` (listed first, so the default) and
/// `b.test` + `*.b.test`.
fn fixture(reload_interval: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let a = pki.issue(dir.path(), "a", &["a.test"]);
    let b = pki.issue(dir.path(), "b", &["b.test", "*.b.test"]);
    let settings = TlsSettings {
        certificates: vec![a.spec.clone(), b.spec.clone()],
        reload_interval,
    };
    Fixture {
        _dir: dir,
        pki,
        a,
        b,
        settings,
    }
}

/// Handshakes as `name` (sending SNI only if `send_sni`) and returns the
/// certificate the server presented; verification uses the test CA.
async fn served_cert(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    name: &str,
    send_sni: bool,
) -> Result<CertificateDer<'static>, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = send_sni;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let tls = connector.connect(name, tcp).await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].clone())
}

fn https_client(fx: &Fixture, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
    let root = reqwest::Certificate::from_der(&fx.pki.ca_der).unwrap();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(root)
        .resolve("a.test", addr)
        .resolve("x.b.test", addr);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn sni_picks_the_certificate_and_first_is_default() {
    let fx = fixture(Duration::from_secs(60));
    let acceptor = Arc::new(TlsAcceptor::new(&fx.settings).unwrap());
    assert_eq!(
        acceptor.served_names(),
        vec![
            vec!["a.test".to_owned()],
            vec!["b.test".into(), "*.b.test".into()]
        ]
    );
    let server = TestServer::start(Limits::default(), Some(acceptor)).await;
    let ca = &fx.pki.ca_der;

    assert_eq!(
        served_cert(server.addr, ca, "a.test", true).await.unwrap(),
        fx.a.der
    );
    assert_eq!(
        served_cert(server.addr, ca, "b.test", true).await.unwrap(),
        fx.b.der
    );
    assert_eq!(
        served_cert(server.addr, ca, "x.b.test", true)
            .await
            .unwrap(),
        fx.b.der
    );
    // Without SNI the first certificate is served (and verifies as a.test).
    assert_eq!(
        served_cert(server.addr, ca, "a.test", false).await.unwrap(),
        fx.a.der
    );
    // An unknown name also gets the default, which does not verify for it.
    assert!(served_cert(server.addr, ca, "c.test", true).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http1_still_works() {
    let fx = fixture(Duration::from_secs(60));
    let acceptor = Arc::new(TlsAcceptor::new(&fx.settings).unwrap());
    let server = TestServer::start(Limits::default(), Some(acceptor)).await;
    let port = server.addr.port();

    let response = https_client(&fx, server.addr, false)
        .get(format!("https://x.b.test:{port}/h2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.text().await.unwrap();
    assert!(
        body.starts_with("path=/h2 version=HTTP/2.0 tls=true sni=x.b.test "),
        "{body}"
    );

    let response = https_client(&fx, server.addr, true)
        .get(format!("https://a.test:{port}/h1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    let body = response.text().await.unwrap();
    assert!(
        body.starts_with("path=/h1 version=HTTP/1.1 tls=true sni=a.test "),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn rewritten_certificate_is_served_without_restart() {
    let fx = fixture(Duration::from_millis(50));
    let acceptor = Arc::new(TlsAcceptor::new(&fx.settings).unwrap());
    let server = TestServer::start(Limits::default(), Some(acceptor)).await;
    let ca = &fx.pki.ca_der;
    assert_eq!(
        served_cert(server.addr, ca, "b.test", true).await.unwrap(),
        fx.b.der
    );

    let dir = fx.b.spec.cert.parent().unwrap();
    let renewed = fx.pki.issue(dir, "b", &["b.test", "renewed.b.test"]);
    assert_ne!(renewed.der, fx.b.der);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let served = served_cert(server.addr, ca, "b.test", true).await.unwrap();
        if served == renewed.der {
            break;
        }
        assert_eq!(served, fx.b.der, "neither the old nor the new certificate");
        assert!(
            Instant::now() < deadline,
            "renewed certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The untouched certificate is still served.
    assert_eq!(
        served_cert(server.addr, ca, "a.test", true).await.unwrap(),
        fx.a.der
    );
    server.stop().await;
}

/// The `tls_certificate_expiry_seconds` samples an acceptor's collector
/// gives, by certificate file.
fn expiries(acceptor: &TlsAcceptor) -> Vec<(String, i64)> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(acceptor.expiry_collector()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("tls_certificate_expiry_seconds{certificate=\""))
        .map(|l| {
            let (file, value) = l.split_once("\"} ").unwrap();
            (file.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn certificate_expiry_is_exported_and_follows_a_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let a = pki.issue_until(dir.path(), "a", &["a.test"], (2030, 1, 1));
    let b = pki.issue_until(dir.path(), "b", &["b.test"], (2035, 6, 1));
    let acceptor = TlsAcceptor::new(&TlsSettings {
        certificates: vec![a.spec.clone(), b.spec.clone()],
        reload_interval: Duration::from_secs(60),
    })
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // 2030-01-01 and 2035-06-01, 00:00 UTC.
    let (until_a, until_b) = (1_893_456_000 - now, 2_064_268_800 - now);
    let got = expiries(&acceptor);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, a.spec.cert.display().to_string());
    assert!((got[0].1 - until_a).abs() <= 5, "{got:?} vs {until_a}");
    assert!((got[1].1 - until_b).abs() <= 5, "{got:?} vs {until_b}");

    // Renewed in place: the gauge follows the certificate in use.
    pki.issue_until(dir.path(), "a", &["a.test"], (2035, 6, 1));
    assert!(acceptor.reload().0);
    let got = expiries(&acceptor);
    assert!((got[0].1 - until_b).abs() <= 5, "{got:?}");
}

#[test]
fn broken_rewrite_keeps_the_old_certificate_and_names_the_file() {
    let fx = fixture(Duration::from_secs(60));
    let acceptor = TlsAcceptor::new(&fx.settings).unwrap();
    write_atomically(
        &fx.b.spec.cert,
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n",
    );

    let (changed, errors) = acceptor.reload();
    assert!(!changed);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0].to_string();
    assert!(message.contains("b.crt"), "{message}");
    assert_eq!(acceptor.served_names()[1], vec!["b.test", "*.b.test"]);

    // Not retried (nor logged again) until the files change.
    assert_eq!(acceptor.reload().1.len(), 0);

    // A key that does not belong to the certificate is refused too.
    let other = fx
        .pki
        .issue(fx.b.spec.cert.parent().unwrap(), "other", &["b.test"]);
    std::fs::copy(&other.spec.cert, &fx.b.spec.cert).unwrap();
    std::fs::copy(&fx.a.spec.key, &fx.b.spec.key).unwrap();
    let (changed, errors) = acceptor.reload();
    assert!(!changed);
    assert!(matches!(errors[..], [TlsError::Key { .. }]), "{errors:?}");

    // A vanished file is reported once, not on every poll.
    std::fs::remove_file(&fx.b.spec.key).unwrap();
    let (_, errors) = acceptor.reload();
    assert!(matches!(errors[..], [TlsError::Read { .. }]), "{errors:?}");
    assert!(acceptor.reload().1.is_empty());
    assert_eq!(acceptor.served_names()[1], vec!["b.test", "*.b.test"]);
}

#[test]
fn missing_or_empty_configuration_is_an_error() {
    let fx = fixture(Duration::from_secs(60));
    let mut settings = fx.settings.clone();
    settings.certificates[1].key = fx.b.spec.key.with_file_name("missing.key");
    let error = TlsAcceptor::new(&settings).unwrap_err();
    assert!(error.to_string().contains("missing.key"), "{error}");

    settings.certificates.clear();
    assert!(matches!(
        TlsAcceptor::new(&settings),
        Err(TlsError::NoCertificates)
    ));
}

#[tokio::test]
async fn failed_and_slow_handshakes_are_counted() {
    let fx = fixture(Duration::from_secs(60));
    let acceptor = Arc::new(TlsAcceptor::new(&fx.settings).unwrap());
    let limits = Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = TestServer::start(limits, Some(acceptor)).await;

    // Plain HTTP to the TLS port: not a ClientHello.
    exchange(server.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    // A client that never starts the handshake.
    exchange(server.addr, b"").await;

    let metrics = Arc::clone(&server.metrics);
    eventually("a tls_handshake_error and a header_timeout", || {
        metrics.limit_hits(LimitKind::TlsHandshakeError) == 1
            && metrics.limit_hits(LimitKind::HeaderTimeout) == 1
    })
    .await;
    server.stop().await;
}
