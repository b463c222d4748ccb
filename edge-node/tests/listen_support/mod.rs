//! Shared helpers for the `listen_*` tests: a server on port 0 with an echo
//! service, raw-socket exchanges and certificate generation.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_node::listen::{CertSpec, ConnInfo, Limits, ListenerMetrics, TlsAcceptor, serve};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything a test waits on, so a bug fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Hooks into the echo service for requests to `/hold`: the service reports
/// each such request on `entered` and answers only once `release` fires.
#[derive(Clone)]
pub struct Hold {
    pub entered: mpsc::UnboundedSender<()>,
    pub release: Arc<Notify>,
}

/// A running `serve` on 127.0.0.1:0.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Arc<ListenerMetrics>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(limits: Limits, tls: Option<Arc<TlsAcceptor>>) -> Self {
        Self::start_with_hold(limits, tls, None).await
    }

    pub async fn start_with_hold(
        limits: Limits,
        tls: Option<Arc<TlsAcceptor>>,
        hold: Option<Hold>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(ListenerMetrics::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            tls,
            Arc::new(limits),
            Arc::clone(&metrics),
            move |info| echo(info, hold.clone()),
            shutdown.clone(),
        ));
        Self {
            addr,
            metrics,
            shutdown,
            task,
        }
    }

    /// Cancels and waits for `serve` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("serve did not return after shutdown")
            .unwrap();
    }
}

/// Answers with the request's path, version and the connection's info.
fn echo(
    info: ConnInfo,
    hold: Option<Hold>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Send
+ 'static {
    service_fn(move |request: Request<Incoming>| {
        let info = info.clone();
        let hold = hold.clone();
        async move {
            if let (Some(hold), "/hold") = (&hold, request.uri().path()) {
                let released = hold.release.notified();
                hold.entered.send(()).unwrap();
                released.await;
            }
            let body = format!(
                "path={} version={:?} tls={} sni={} peer_ip={} local_port={}",
                request.uri().path(),
                request.version(),
                info.tls,
                info.sni.as_deref().unwrap_or("-"),
                info.peer.ip(),
                info.local.port(),
            );
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }
    })
}

/// Writes `request` and reads until the server closes (or `PATIENCE`).
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_to_close(&mut stream).await
}

/// Reads until EOF or a reset; whatever arrived before either is returned.
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    let read_all = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read_all)
        .await
        .expect("server did not close the connection");
    String::from_utf8_lossy(&received).into_owned()
}

/// Reads one HTTP/1.1 response with a `Content-Length` body.
pub async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .expect("response without Content-Length");
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("response did not arrive")
            .unwrap();
        assert!(n > 0, "connection closed mid-response: {text:?}");
        received.extend_from_slice(&chunk[..n]);
    }
}

/// Polls `condition` until it holds or `PATIENCE` runs out. For state the
/// server updates just after the client can observe the wire (metrics).
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A private CA and the leaf certificates it issues, written as PEM files.
pub struct Pki {
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// A leaf certificate as written to disk.
pub struct Leaf {
    pub spec: CertSpec,
    pub der: rustls::pki_types::CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Self {
        Self::named("listen test CA")
    }

    /// A CA with common name `name` (two CAs of one name look like one CA
    /// with a bad signature to a verifier).
    pub fn named(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&ca_key).unwrap();
        Self {
            ca_der: ca_cert.der().clone(),
            ca_cert,
            ca_key,
        }
    }

    /// The CA certificate as PEM, for trust stores (`ca_file`).
    pub fn ca_pem(&self) -> String {
        self.ca_cert.pem()
    }

    /// Issues a certificate for `names` and writes it to `dir/stem.{crt,key}`.
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> Leaf {
        self.issue_until(dir, stem, names, (4096, 1, 1))
    }

    /// A leaf whose validity ends on `(year, month, day)`.
    pub fn issue_until(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        (year, month, day): (i32, u8, u8),
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let spec = CertSpec {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        write_atomically(&spec.cert, cert.pem().as_bytes());
        write_atomically(&spec.key, key.serialize_pem().as_bytes());
        Leaf {
            spec,
            der: cert.der().clone(),
        }
    }
}

/// Replaces `path` by rename, as certificate tools do.
pub fn write_atomically(path: &Path, contents: &[u8]) {
    let staging: PathBuf = path.with_extension("tmp");
    std::fs::write(&staging, contents).unwrap();
    std::fs::rename(&staging, path).unwrap();
}
