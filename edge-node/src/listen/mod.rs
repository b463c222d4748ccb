//! The edge's front door: accepting HTTP and HTTPS connections and serving
//! them with any hyper service, under configurable limits.
//!
//! This module knows nothing about what the edge does with a request; it
//! owns everything between `accept()` and the service call: TLS with SNI
//! and certificate reload (`tls`, `sni`), protocol selection (HTTP/1.1 and
//! HTTP/2 through hyper-util's auto builder; ALPN decides over TLS, the h2c
//! preface on plain TCP), per-connection limits and timers (`limits`,
//! `tracker`, `conn`), canned replies for clients hyper cannot answer
//! (`reply`), metrics (`metrics`) and graceful shutdown.
//!
//! How each limit is answered:
//!
//! | limit | HTTP/1 | HTTP/2 |
//! |---|---|---|
//! | `max_header_bytes`, `max_headers` | `431` (hyper), then close | `431` from the h2 stack (not counted here) |
//! | `header_read_timeout` | plain: `408`, then close; TLS: close | — (h2 heads arrive as frames; see idle) |
//! | `idle_timeout` | close between requests | `GOAWAY` |
//! | `max_connections` | plain: `503` + `Retry-After: 1`; TLS: close | same |
//! | `write_timeout` (a response the client stops taking) | close | close (also a stream held at a zero window; `stall`) |
//!
//! Over TLS the `408`/`503` are not sent: the `408` would have to go through
//! the TLS session hyper owned (and dropped) mid-read, and answering a `503`
//! would mean paying for the very handshake the limit exists to shed.
//!
//! Body size is not limited here: it depends on the route, so the service
//! enforces it (e.g. with `http_body_util::Limited`) and answers `413`.

mod cert_expiry;
mod conn;
mod limits;
mod metrics;
mod per_client;
mod reply;
mod sni;
mod stall;
mod tls;
mod tracker;

use std::convert::Infallible;
use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use cert_expiry::ExpiryCollector;
pub use limits::{LimitKind, Limits, LimitsError, MIN_HEADER_BYTES};
pub use metrics::ListenerMetrics;
pub use tls::{CertSpec, TlsAcceptor, TlsError, TlsSettings};

use conn::{Builders, Ended};
use tracker::{ConnTracker, TrackedIo};

/// Most `503` replies being written at once; past that, over-limit
/// connections are closed without one so a flood cannot pile up sockets.
const MAX_PENDING_REJECTIONS: usize = 256;

/// Backoff after an `accept()` error that is not about one connection
/// (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What the service factory learns about a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The server name the client sent in its TLS ClientHello.
    pub sni: Option<String>,
    /// The client's IP as a header value, rendered once per connection:
    /// every request on it sends it to the origin (X-Forwarded-For and
    /// the client-IP field).
    pub peer_ip: http::HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, tls: bool, sni: Option<String>) -> Self {
        let peer_ip = http::HeaderValue::from_str(&peer.ip().to_string())
            .expect("an IP address is a valid header value");
        Self {
            peer,
            local,
            tls,
            sni,
            peer_ip,
        }
    }
}

/// Accepts connections from `listener` and serves each with the service
/// `make_service` builds for it, until `shutdown` is cancelled.
///
/// On shutdown it stops accepting (closing the listening socket), asks
/// every connection to finish gracefully (HTTP/1: close after the current
/// response; HTTP/2: `GOAWAY`), waits for them up to
/// [`Limits::drain_timeout`] and then drops whatever is left. It returns
/// once every connection is gone.
///
/// With `tls`, every connection is TLS and the acceptor's certificate
/// reload task is started (once per acceptor). Must run in a Tokio runtime.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    tls: Option<Arc<TlsAcceptor>>,
    limits: Arc<Limits>,
    metrics: Arc<ListenerMetrics>,
    make_service: F,
    shutdown: CancellationToken,
) where
    F: Fn(ConnInfo) -> S + Send + Sync + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    if let Some(tls) = &tls {
        tls.spawn_reloader();
    }
    let shared = Arc::new(Shared {
        builders: Builders::new(&limits),
        tls,
        limits,
        metrics,
        make_service,
        shutdown,
    });
    let permits = Arc::new(Semaphore::new(
        shared
            .limits
            .max_connections
            .clamp(1, Semaphore::MAX_PERMITS),
    ));
    let per_client = Arc::new(per_client::PerClient::default());
    let reply_permits = Arc::new(Semaphore::new(MAX_PENDING_REJECTIONS));
    let mut rejections = RejectionLog::default();
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                report_panic(joined);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                tracing::error!(%error, "accept failed; backing off");
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = per_client.admit(peer.ip(), shared.limits.max_connections_per_client);
        let permit = match slot {
            Some(_) => Arc::clone(&permits).try_acquire_owned().ok(),
            None => None,
        };
        let (Some(permit), Some(slot)) = (permit, slot) else {
            shared.metrics.record_rejected();
            rejections.note(peer, shared.limits.max_connections);
            if shared.tls.is_none()
                && let Ok(reply_permit) = Arc::clone(&reply_permits).try_acquire_owned()
            {
                tasks.spawn(async move {
                    reply::reply_and_close(stream, &reply::service_unavailable()).await;
                    drop(reply_permit);
                });
            }
            continue;
        };
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            let _open = shared.metrics.open_connection();
            shared.handle(stream, peer).await;
            drop(permit);
            drop(slot);
        });
    }

    drop(listener);
    let open = tasks.len();
    if open > 0 {
        tracing::info!(open, "listener stopped accepting; draining connections");
    }
    let drained = tokio::time::timeout(shared.limits.drain_timeout, async {
        while let Some(joined) = tasks.join_next().await {
            report_panic(joined);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = tasks.len(),
            drain_timeout = ?shared.limits.drain_timeout,
            "drain timeout reached; dropping remaining connections"
        );
        tasks.shutdown().await;
    }
}

/// Everything a connection task needs, shared by all of them.
struct Shared<F> {
    builders: Builders,
    tls: Option<Arc<TlsAcceptor>>,
    limits: Arc<Limits>,
    metrics: Arc<ListenerMetrics>,
    make_service: F,
    shutdown: CancellationToken,
}

impl<F> Shared<F> {
    async fn handle<S, B>(&self, stream: TcpStream, peer: SocketAddr)
    where
        F: Fn(ConnInfo) -> S,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(error) => {
                tracing::debug!(%peer, %error, "connection gone before it was served");
                return;
            }
        };
        match &self.tls {
            Some(acceptor) => self.handle_tls(acceptor, stream, peer, local).await,
            None => self.handle_plain(stream, peer, local).await,
        }
    }

    async fn handle_plain<S, B>(&self, stream: TcpStream, peer: SocketAddr, local: SocketAddr)
    where
        F: Fn(ConnInfo) -> S,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        // A second handle on the socket, so a 408 can still be written
        // after hyper's connection (which owns the stream) is dropped.
        let (stream, spare) = match keep_spare(stream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%peer, %error, "connection gone before it was served");
                return;
            }
        };
        let service = (self.make_service)(ConnInfo::new(peer, local, false, None));
        let tracker = ConnTracker::new(false);
        let io = TrackedIo::new(
            stream,
            Arc::clone(&tracker),
            true,
            self.limits.write_timeout,
        );
        let ended = conn::drive(
            &self.builders.auto,
            io,
            service,
            tracker,
            &self.limits,
            &self.shutdown,
        )
        .await;
        let limit = ended.limit();
        self.finish(peer, ended);
        let Some(spare) = spare else { return };
        let reply = match limit {
            Some(LimitKind::HeaderTimeout) => {
                Some(reply::request_timeout(self.limits.header_read_timeout))
            }
            // hyper already wrote the 431 but may leave unread input behind.
            Some(LimitKind::HeaderTooLarge) => None,
            _ => return,
        };
        match TcpStream::from_std(spare) {
            Ok(spare) => match reply {
                Some(response) => reply::reply_and_close(spare, &response).await,
                None => reply::linger_close(spare).await,
            },
            Err(error) => tracing::debug!(%peer, %error, "cannot finish the close"),
        }
    }

    async fn handle_tls<S, B>(
        &self,
        acceptor: &TlsAcceptor,
        stream: TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
    ) where
        F: Fn(ConnInfo) -> S,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let handshake = tokio::select! {
            () = self.shutdown.cancelled() => return,
            handshake = tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(stream)) => handshake,
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                self.limit_hit(peer, LimitKind::TlsHandshakeError, &error);
                return;
            }
            Err(_) => {
                self.limit_hit(peer, LimitKind::HeaderTimeout, &"TLS handshake timed out");
                return;
            }
        };
        let session = stream.get_ref().1;
        let sni = tls::sni(session);
        let (builder, h2, alpn_settled) = match session.alpn_protocol() {
            Some(b"h2") => (&self.builders.http2, true, true),
            Some(_) => (&self.builders.http1, false, true),
            None => (&self.builders.auto, false, false),
        };
        let service = (self.make_service)(ConnInfo::new(peer, local, true, sni));
        let tracker = ConnTracker::new(h2);
        let io = TrackedIo::new(
            stream,
            Arc::clone(&tracker),
            !alpn_settled,
            self.limits.write_timeout,
        );
        let ended = conn::drive(builder, io, service, tracker, &self.limits, &self.shutdown).await;
        self.finish(peer, ended);
    }

    /// Logs and counts how a served connection ended.
    fn finish(&self, peer: SocketAddr, ended: Ended) {
        match (ended.limit(), &ended) {
            (Some(LimitKind::IdleTimeout), _) => {
                // Routine for keep-alive clients: counted, logged quietly.
                self.metrics.record_limit(LimitKind::IdleTimeout);
                tracing::debug!(%peer, limit = %LimitKind::IdleTimeout, "closed idle connection");
            }
            (Some(kind), Ended::Failed(error)) => self.limit_hit(peer, kind, error),
            (Some(kind), Ended::WriteStalled) => self.limit_hit(
                peer,
                kind,
                &"a response waited write_timeout for the client to read more",
            ),
            (Some(kind), _) => self.limit_hit(peer, kind, &"request head not received in time"),
            (None, Ended::Failed(error)) => {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            (None, _) => {}
        }
    }

    fn limit_hit(&self, peer: SocketAddr, kind: LimitKind, detail: &dyn std::fmt::Display) {
        self.metrics.record_limit(kind);
        tracing::warn!(%peer, limit = %kind, detail = %detail, "connection limit hit");
    }
}

/// Splits a second, unregistered handle off the socket (a `dup`). It shares
/// the non-blocking flag and is only registered with Tokio if needed. When
/// no descriptor is left for it, the connection is served without one (and
/// a header timeout then closes without a `408`).
fn keep_spare(stream: TcpStream) -> io::Result<(TcpStream, Option<std::net::TcpStream>)> {
    let stream = stream.into_std()?;
    let spare = stream.try_clone().ok();
    Ok((TcpStream::from_std(stream)?, spare))
}

/// Errors from `accept()` that concern only the connection being accepted.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

fn report_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "connection task panicked");
    }
}

/// Logs `max_connections` rejections at most once a second, with a count
/// of the ones in between, so a flood does not become a log flood.
#[derive(Debug, Default)]
struct RejectionLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RejectionLog {
    fn note(&mut self, peer: SocketAddr, max_connections: usize) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            %peer,
            limit = "max_connections",
            max_connections,
            suppressed = self.suppressed,
            "connection rejected: too many open connections"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}
