//! At most `max_connections` connections from this edge to each origin of
//! a pool, with requests beyond it waiting (up to `queue_timeout`) for one
//! to come free.
//!
//! hyper-util's pooled client opens a new connection whenever no idle one
//! is at hand, so a burst of misses (or of clients that each hold a slow
//! origin response) would open as many connections as there are requests
//! and can exhaust the origin's file descriptors or worker slots. The cap
//! sits in the connector: a connection exists only while it holds a permit
//! of its origin's semaphore, and a request that finds every permit taken
//! waits; the client races that wait against the return of an idle
//! connection, so a freed connection is reused at once. A wait that runs
//! out is [`Saturated`]: the origin is busy, not down, so the pool tries
//! its next origin and does not count a failure against this one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use http::uri::Authority;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every connection slot to `origin` stayed taken for `waited`.
#[derive(Debug, thiserror::Error)]
#[error(
    "all {max} connections to origin {origin} are in use (pool max_connections) and none came free within {waited:?}"
)]
pub struct Saturated {
    pub origin: Authority,
    pub max: usize,
    pub waited: Duration,
}

/// The limits shared by a pool's connectors.
#[derive(Debug)]
pub struct Caps {
    per_origin: HashMap<Authority, Arc<Semaphore>>,
    max: usize,
    queue_timeout: Duration,
}

impl Caps {
    pub fn new<'a>(
        origins: impl IntoIterator<Item = &'a Authority>,
        max: usize,
        queue_timeout: Duration,
    ) -> Arc<Self> {
        let per_origin = origins
            .into_iter()
            .map(|a| (a.clone(), Arc::new(Semaphore::new(max))))
            .collect();
        Arc::new(Self {
            per_origin,
            max,
            queue_timeout,
        })
    }

    /// No cap (health checks: one connection per origin and interval, and
    /// a busy origin must not look down because its slots are taken).
    pub fn none() -> Arc<Self> {
        Arc::new(Self {
            per_origin: HashMap::new(),
            max: 0,
            queue_timeout: Duration::ZERO,
        })
    }
}

/// A connector whose connections each hold a slot of their origin.
#[derive(Debug, Clone)]
pub struct Capped<C> {
    inner: C,
    caps: Arc<Caps>,
}

impl<C> Capped<C> {
    pub fn new(inner: C, caps: Arc<Caps>) -> Self {
        Self { inner, caps }
    }
}

/// A connection and the slot it holds until it closes.
pub struct CappedConn<T> {
    io: T,
    _slot: Option<OwnedSemaphorePermit>,
}

impl<C> tower_service::Service<Uri> for Capped<C>
where
    C: tower_service::Service<Uri> + Clone + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = CappedConn<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The ready connector is the one to call; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let caps = self.caps.clone();
        Box::pin(async move {
            // Origins outside the pool's list (none today) are not capped.
            let slot = match uri.authority().and_then(|a| caps.per_origin.get(a)) {
                None => None,
                Some(semaphore) => {
                    let started = Instant::now();
                    let wait = semaphore.clone().acquire_owned();
                    // The semaphores are never closed: only the wait ends.
                    match tokio::time::timeout(caps.queue_timeout, wait).await {
                        Ok(Ok(permit)) => Some(permit),
                        Ok(Err(_)) | Err(_) => {
                            return Err(Box::new(Saturated {
                                origin: uri.authority().expect("matched").clone(),
                                max: caps.max,
                                waited: started.elapsed(),
                            }) as BoxError);
                        }
                    }
                }
            };
            let io = inner.call(uri).await.map_err(Into::into)?;
            Ok(CappedConn { io, _slot: slot })
        })
    }
}

/// Whether `Saturated` is in `e`'s source chain.
pub fn saturated<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Saturated> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(s) = err.downcast_ref::<Saturated>() {
            return Some(s);
        }
        cur = err.source();
    }
    None
}

impl<T: Connection> Connection for CappedConn<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for CappedConn<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for CappedConn<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
