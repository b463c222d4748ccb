//! `https://` health URLs: checked against `health.ca_file` when set, so an
//! endpoint with a certificate from a private CA stays up, and one whose
//! certificate that CA did not issue goes down.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::{TestServer, config_text, eventually};

/// A test CA that issues a `localhost` certificate.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    fn write(&self, dir: &std::path::Path, name: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, self.cert.pem()).unwrap();
        path.display().to_string()
    }
}

/// An HTTPS `/healthz` on 127.0.0.1:0 with a `localhost` certificate from
/// `ca`; counts the requests that got through TLS.
async fn https_health(ca: &Ca) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let key_der = rustls_pemfile::private_key(&mut key.serialize_pem().as_bytes())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key_der)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        use hyper::service::service_fn;
        use hyper_util::rt::{TokioExecutor, TokioIo};
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    count.fetch_add(1, Ordering::Relaxed);
                    let ok = http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"ok"),
                    ));
                    async move { Ok::<_, std::convert::Infallible>(ok) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, served)
}

fn config_with(addr: std::net::SocketAddr, ca_file: &str) -> String {
    config_text(&format!(
        ", health = \"https://localhost:{}/healthz\", health_on_other_host = true",
        addr.port()
    ))
    .replace(
        "[health]\n",
        &format!("[health]\nca_file = \"{ca_file}\"\n"),
    )
}

const EU_CLIENT: [&str; 5] = ["cdn.waypost.test", "A", "-b", "127.0.0.2", "+noedns"];

#[tokio::test(flavor = "multi_thread")]
async fn an_https_health_url_is_verified_with_the_ca_file() {
    let files = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (addr, served) = https_health(&ca).await;
    let t = TestServer::start(&config_with(addr, &ca.write(files.path(), "ca.pem"))).await;
    // fall = 2: had these checks failed, eu would be down by the third.
    eventually(Duration::from_secs(5), async || {
        served.load(Ordering::Relaxed) >= 3
    })
    .await
    .expect("health checks got through TLS");
    assert_eq!(
        t.dig(&EU_CLIENT).answer_data(),
        ["127.0.1.1"],
        "eu stays up"
    );
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_another_ca_fails_the_check() {
    let files = tempfile::tempdir().unwrap();
    let (theirs, ours) = (Ca::new(), Ca::new());
    let (addr, served) = https_health(&theirs).await;
    let t = TestServer::start(&config_with(addr, &ours.write(files.path(), "ca.pem"))).await;
    t.wait_checked().await;
    let metrics = t.server.metrics_text();
    assert!(
        metrics.contains("geodns_endpoint_up{region=\"eu\",endpoint=\"127.0.1.1\"} 0"),
        "checked and down: {metrics}"
    );
    eventually(Duration::from_secs(2), async || {
        t.dig(&EU_CLIENT).answer_data() == ["127.0.2.1"]
    })
    .await
    .expect("eu goes down: its certificate is not from the configured CA");
    assert_eq!(served.load(Ordering::Relaxed), 0, "no check got past TLS");
    t.server.shutdown().await;
}

#[test]
fn a_bad_ca_file_is_refused_naming_field_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geo.toml");
    std::fs::write(dir.path().join("test.mmdb"), support::test_database()).unwrap();
    for (name, content) in [("missing.pem", None), ("empty.pem", Some("nothing\n"))] {
        if let Some(content) = content {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let text =
            config_text("").replace("[health]\n", &format!("[health]\nca_file = \"{name}\"\n"));
        let err = geodns::config::Config::parse(&path, &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("geo.toml") && err.contains("health.ca_file") && err.contains(name),
            "{err}"
        );
    }
}
