//! The origin's listeners: accepting connections and serving them with
//! hyper under per-listener limits, ported from the edge's listener
//! (`edge-node/src/listen/`): HTTP/1.1 and h2c, or either over TLS when
//! the listener has a certificate (`[tls]` on the public listener, mutual
//! TLS on the peer listener, [`crate::peer_tls`]).
//!
//! | limit | HTTP/1 | HTTP/2 |
//! |---|---|---|
//! | `max_header_bytes` | `431` (hyper), then close | header list size, enforced by h2 |
//! | `header_read_timeout` | `408`, then close | — (see idle) |
//! | `idle_timeout` | close between requests | `GOAWAY` |
//! | `max_connections` | `503` + `Retry-After: 1`, close | same |
//!
//! The public API and the peer traffic (Raft RPCs, forwarded writes, blob
//! copies) can each have a listener ([`crate::config::PeerListener`]), so
//! a flood of the public port cannot take the connections the cluster
//! needs to stay writable.

mod conn;
mod limits;
mod reply;
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
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use limits::{CLIENT_POOL_IDLE, LimitKind, Limits, MIN_HEADER_BYTES};

use conn::Ended;
use tracker::{ConnTracker, TrackedIo};

use crate::metrics::{LimitLabels, ListenerLabels, Metrics};

/// Most `503` replies being written at once; past that, over-limit
/// connections are closed without one so a flood cannot pile up sockets.
const MAX_PENDING_REJECTIONS: usize = 256;

/// Backoff after an `accept()` error that is not about one connection
/// (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// One listener's socket, limits and the label its metrics carry.
#[derive(Debug)]
pub struct Listener {
    pub socket: TcpListener,
    pub limits: Limits,
    /// `public` or `peer`.
    pub name: &'static str,
    /// Serve TLS with this configuration; a handshake that fails closes
    /// the connection before any request is read.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// How [`serve`] ends.
#[derive(Debug, Clone)]
pub struct Stop {
    /// Stop accepting and let connections finish, up to the drain timeout.
    pub graceful: CancellationToken,
    /// Drop everything at once, like a crash.
    pub kill: CancellationToken,
}

/// Accepts connections on `listener` and serves each with `service` until
/// `stop` says otherwise.
pub async fn serve<S, B>(listener: Listener, metrics: Arc<Metrics>, service: S, stop: Stop)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let labels = ListenerLabels {
        listener: listener.name,
    };
    let shared = Arc::new(Shared {
        builder: conn::builder(&listener.limits),
        limits: listener.limits,
        metrics,
        labels: labels.clone(),
        shutdown: stop.graceful.clone(),
        tls: listener.tls.map(tokio_rustls::TlsAcceptor::from),
    });
    let permits = Arc::new(Semaphore::new(
        listener
            .limits
            .max_connections
            .clamp(1, Semaphore::MAX_PERMITS),
    ));
    let reply_permits = Arc::new(Semaphore::new(MAX_PENDING_REJECTIONS));
    let mut rejections = RejectionLog::default();
    let mut tasks = JoinSet::new();
    let socket = listener.socket;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.kill.cancelled() => return,
            () = stop.graceful.cancelled() => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                report_panic(joined);
                continue;
            }
            accepted = socket.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                tracing::error!(%error, listener = labels.listener, "accept failed; backing off");
                tokio::select! {
                    () = stop.kill.cancelled() => return,
                    () = stop.graceful.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                }
            }
        };
        // Heads and bodies go out as separate writes: without NODELAY every
        // small response waits ~40 ms for the peer's delayed ACK.
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            shared
                .metrics
                .connections_rejected
                .get_or_create(&labels)
                .inc();
            rejections.note(peer, labels.listener, listener.limits.max_connections);
            if let Ok(reply_permit) = Arc::clone(&reply_permits).try_acquire_owned() {
                tasks.spawn(async move {
                    reply::reply_and_close(stream, &reply::service_unavailable()).await;
                    drop(reply_permit);
                });
            }
            continue;
        };
        let shared = Arc::clone(&shared);
        let service = service.clone();
        tasks.spawn(async move {
            let open = shared
                .metrics
                .connections_open
                .get_or_create(&shared.labels)
                .clone();
            open.inc();
            shared.handle(stream, peer, service).await;
            open.dec();
            drop(permit);
        });
    }

    drop(socket);
    let drained = tokio::time::timeout(shared.limits.drain_timeout, async {
        while let Some(joined) = tasks.join_next().await {
            report_panic(joined);
        }
    });
    tokio::select! {
        () = stop.kill.cancelled() => {}
        drained = drained => if drained.is_err() {
            tracing::warn!(
                remaining = tasks.len(),
                drain_timeout = ?shared.limits.drain_timeout,
                "drain timeout reached; dropping remaining connections"
            );
        }
    }
    tasks.shutdown().await;
}

/// Everything a connection task needs, shared by all of them.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
    metrics: Arc<Metrics>,
    labels: ListenerLabels,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Shared {
    async fn handle<S, B>(&self, stream: TcpStream, peer: SocketAddr, service: S)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        if let Some(acceptor) = &self.tls {
            let handshake = tls::accept(acceptor, stream, self.limits.header_read_timeout).await;
            let (stream, identity) = match handshake {
                Ok(accepted) => accepted,
                Err(error) => {
                    self.metrics
                        .tls_handshake_failures
                        .get_or_create(&self.labels)
                        .inc();
                    tracing::debug!(%peer, %error, listener = self.labels.listener, "TLS handshake failed");
                    return;
                }
            };
            let tracker = ConnTracker::new(false);
            let io = TrackedIo::new(stream, Arc::clone(&tracker), true);
            let service = tls::WithIdentity {
                inner: service,
                identity,
            };
            let ended = conn::drive(
                &self.builder,
                io,
                service,
                tracker,
                &self.limits,
                &self.shutdown,
            )
            .await;
            // No 408 in plaintext into a TLS stream: the close says it.
            self.finish(peer, ended);
            return;
        }
        // A second handle on the socket, so a 408 can still be written
        // after hyper's connection (which owns the stream) is dropped.
        let (stream, spare) = match keep_spare(stream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%peer, %error, "connection gone before it was served");
                return;
            }
        };
        let tracker = ConnTracker::new(false);
        let io = TrackedIo::new(stream, Arc::clone(&tracker), true);
        let ended = conn::drive(
            &self.builder,
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

    /// Logs and counts how a served connection ended.
    fn finish(&self, peer: SocketAddr, ended: Ended) {
        let Some(kind) = ended.limit() else {
            if let Ended::Failed(error) = &ended {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            return;
        };
        self.metrics
            .connection_limits
            .get_or_create(&LimitLabels {
                listener: self.labels.listener,
                kind: kind.as_str(),
            })
            .inc();
        // Idle closes are routine for keep-alive clients.
        if kind == LimitKind::IdleTimeout {
            tracing::debug!(%peer, limit = %kind, "closed idle connection");
        } else {
            tracing::debug!(%peer, limit = %kind, listener = self.labels.listener, "connection limit hit");
        }
    }
}

/// Splits a second, unregistered handle off the socket (a `dup`). When no
/// descriptor is left for it, the connection is served without one (and a
/// header timeout then closes without a `408`).
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
    fn note(&mut self, peer: SocketAddr, listener: &str, max_connections: usize) {
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
            listener,
            max_connections,
            suppressed = self.suppressed,
            "connection rejected: too many open connections"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}
