//! Driving one HTTP connection under the listener's timers.
//!
//! hyper runs the protocol; this file adds what hyper lacks: an HTTP/1
//! header-read timer that does not also fire on idle keep-alive
//! connections, an idle timer for both protocols, and graceful shutdown on
//! the server's signal. Timer state comes from [`ConnTracker`].

use std::convert::Infallible;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::limits::{LimitKind, Limits};
use super::tracker::{ConnTracker, Deadline, TrackedIo, TrackedService};

/// hyper connection builders for each way the protocol can be settled.
#[derive(Debug)]
pub(crate) struct Builders {
    /// Sniffs the h2 preface; plain TCP and TLS without ALPN.
    pub(crate) auto: auto::Builder<TokioExecutor>,
    /// ALPN chose `http/1.1`.
    pub(crate) http1: auto::Builder<TokioExecutor>,
    /// ALPN chose `h2`.
    pub(crate) http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    pub(crate) fn new(limits: &Limits) -> Self {
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .max_buf_size(limits.effective_header_bytes())
            .max_headers(limits.max_headers.max(1))
            // Our own header timer replaces hyper's (see tracker.rs).
            .header_read_timeout(None)
            .timer(TokioTimer::new());
        auto.http2()
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .timer(TokioTimer::new());
        Self {
            http1: auto.clone().http1_only(),
            http2: auto.clone().http2_only(),
            auto,
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The protocol finished (client closed, or after a graceful shutdown).
    Closed {
        /// The connection was closed because it sat idle.
        idle: bool,
    },
    /// A request head did not arrive within the header-read timeout; the
    /// connection was dropped without a response.
    HeaderTimeout,
    /// A response body waited `write_timeout` for the client to take more
    /// (a zero HTTP/2 window, or a socket that stopped draining); the
    /// connection was dropped.
    WriteStalled,
    /// hyper reported an error; it has already answered what it could
    /// (e.g. `431` for an oversized head).
    Failed(Box<dyn StdError + Send + Sync>),
}

impl Ended {
    /// The limit behind a failure, if one was.
    pub(crate) fn limit(&self) -> Option<LimitKind> {
        match self {
            Ended::Closed { idle: true } => Some(LimitKind::IdleTimeout),
            Ended::Closed { idle: false } => None,
            Ended::HeaderTimeout => Some(LimitKind::HeaderTimeout),
            Ended::WriteStalled => Some(LimitKind::WriteTimeout),
            Ended::Failed(error) => {
                if write_timed_out(error.as_ref()) {
                    return Some(LimitKind::WriteTimeout);
                }
                error
                    .downcast_ref::<hyper::Error>()
                    .filter(|e| e.is_parse_too_large())
                    .map(|_| LimitKind::HeaderTooLarge)
            }
        }
    }
}

/// Whether `error` (or what caused it) is [`TrackedIo`]'s write timeout.
fn write_timed_out(error: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Serves `io` with `service` until the connection ends, applying the
/// header-read and idle timers and the server's shutdown signal.
pub(crate) async fn drive<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: TrackedIo<I>,
    service: S,
    tracker: Arc<ConnTracker>,
    limits: &Limits,
    shutdown: &CancellationToken,
) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let service = TrackedService::new(service, Arc::clone(&tracker));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let header_timeout = limits.header_read_timeout;
    let idle_timeout = limits.idle_timeout;
    let write_timeout = limits.write_timeout;
    let mut closing = false;
    let mut idle_closed = false;
    // After an idle close, how long the peer gets to finish (h2 GOAWAY).
    let mut close_by: Option<Instant> = None;
    loop {
        let deadline = match tracker.deadline(header_timeout, idle_timeout) {
            Deadline::Head(at) => Some(at),
            Deadline::Idle(at) if !closing => Some(at),
            Deadline::Idle(_) | Deadline::None => close_by,
        };
        tokio::select! {
            result = conn.as_mut() => {
                return match result {
                    Ok(()) => Ended::Closed { idle: idle_closed },
                    Err(error) => Ended::Failed(error),
                };
            }
            () = shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tracker.changed() => {}
            () = sleep_until(tracker.stall_deadline(write_timeout)) => {
                if tracker.stalled(write_timeout) {
                    return Ended::WriteStalled;
                }
            }
            () = sleep_until(deadline) => {
                let now = Instant::now();
                if close_by.is_some_and(|at| at <= now) {
                    return Ended::Closed { idle: true };
                }
                match tracker.deadline(header_timeout, idle_timeout) {
                    Deadline::Head(at) if at <= now => return Ended::HeaderTimeout,
                    Deadline::Idle(at) if at <= now && !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        idle_closed = true;
                        close_by = Some(now + header_timeout.max(Duration::from_secs(1)));
                    }
                    _ => {}
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
