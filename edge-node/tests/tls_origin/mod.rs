//! An HTTPS-only test origin (tokio-rustls + hyper on 127.0.0.1:0) that
//! records what the TLS layer saw: the negotiated ALPN protocol, the SNI
//! name, the HTTP version of each request and failed handshakes.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One accepted TLS connection.
#[derive(Clone, Debug)]
pub struct Handshake {
    pub alpn: Option<Vec<u8>>,
    pub sni: Option<String>,
    /// Whether the client presented a certificate.
    pub client_cert: bool,
}

/// One request (health checks included), as the origin saw it.
#[derive(Clone, Debug)]
pub struct Served {
    pub path: String,
    pub version: http::Version,
}

#[derive(Default)]
pub struct Log {
    pub handshakes: Vec<Handshake>,
    pub failed_handshakes: Vec<String>,
    pub requests: Vec<Served>,
    /// `/pass` answers whose stream reached its end (not reset by the
    /// client first).
    pub pass_ends: usize,
}

pub struct TlsOrigin {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

/// How the origin's TLS is set up.
pub struct OriginTlsSetup<'a> {
    /// PEM certificate chain and key files.
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    /// ALPN protocols offered, in preference order.
    pub alpn: &'a [&'a [u8]],
    /// When set, client certificates from this CA are required.
    pub client_ca: Option<CertificateDer<'static>>,
}

impl TlsOrigin {
    pub async fn start(setup: OriginTlsSetup<'_>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut std::fs::read(setup.cert).unwrap().as_slice())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = rustls_pemfile::private_key(&mut std::fs::read(setup.key).unwrap().as_slice())
            .unwrap()
            .unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match setup.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = setup.alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Log>> = Arc::default();
        let shared = log.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                // As servers do: no Nagle delay on the small frames.
                tcp.set_nodelay(true).unwrap();
                let (acceptor, log) = (acceptor.clone(), shared.clone());
                conns.spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            log.lock().unwrap().failed_handshakes.push(e.to_string());
                            return;
                        }
                    };
                    let conn = tls.get_ref().1;
                    log.lock().unwrap().handshakes.push(Handshake {
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                        sni: conn.server_name().map(str::to_string),
                        client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
                    });
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(answer(&log, &req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self { addr, log, task }
    }

    /// Requests for `path` that reached the origin's HTTP layer.
    pub fn hits(&self, path: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.requests.iter().filter(|r| r.path == path).count()
    }

    /// Every request that reached the HTTP layer, health checks included.
    pub fn requests(&self) -> Vec<Served> {
        self.log.lock().unwrap().requests.clone()
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.log.lock().unwrap().handshakes.clone()
    }

    pub fn pass_ends(&self) -> usize {
        self.log.lock().unwrap().pass_ends
    }

    pub fn failed_handshakes(&self) -> Vec<String> {
        self.log.lock().unwrap().failed_handshakes.clone()
    }
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `/healthz` is ok, `/asset.txt` a cacheable asset, `/pass` an
/// uncacheable answer whose end of stream comes [`LATE_END`] after its
/// bytes (what a streaming origin does; over HTTP/2 a separate frame),
/// anything else 404.
fn answer(log: &Arc<Mutex<Log>>, req: &Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    let path = req.uri().path().to_string();
    log.lock().unwrap().requests.push(Served {
        path: path.clone(),
        version: req.version(),
    });
    if path == "/pass" {
        let frames = futures::stream::once(async {
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"passed")))
        })
        .chain({
            let log = log.clone();
            futures::stream::once(async move {
                tokio::time::sleep(LATE_END).await;
                log.lock().unwrap().pass_ends += 1;
            })
            .filter_map(|()| async { None })
        });
        return Response::builder()
            .header("cache-control", "no-store")
            .header("content-length", "6")
            .body(BodyExt::boxed(StreamBody::new(frames)))
            .unwrap();
    }
    let (status, body, cache) = match path.as_str() {
        "/healthz" => (200, "ok", "no-store"),
        "/asset.txt" => (200, "asset over tls", "max-age=300"),
        _ => (404, "not here", "no-store"),
    };
    Response::builder()
        .status(status)
        .header("cache-control", cache)
        .body(BodyExt::boxed(Full::new(Bytes::from_static(
            body.as_bytes(),
        ))))
        .unwrap()
}

/// How long after its bytes `/pass` ends its stream.
const LATE_END: std::time::Duration = std::time::Duration::from_millis(5);
