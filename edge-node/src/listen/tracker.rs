//! Per-connection request tracking for the header-read and idle timers.
//!
//! hyper's own HTTP/1 `header_read_timeout` also runs while a keep-alive
//! connection waits for its next request, so it would cut idle keep-alive
//! clients off after the (short) header timeout and could not tell "slow
//! head" from "idle". Instead the connection's IO and service are wrapped
//! here and a watchdog (see `conn.rs`) reads the resulting state:
//!
//! * a request is *in flight* from the moment hyper hands its head to the
//!   service until its response body is finished or dropped;
//! * with nothing in flight, the first byte read starts a *head* and the
//!   header-read timer (the first head of a connection starts at accept);
//! * with nothing in flight and no head started, the connection is *idle*.
//!
//! HTTP/2 connections (by ALPN or by the h2c preface) have no head timer:
//! frames arrive in any order and an idle h2 connection is normal.
//!
//! Every response body also carries a stall clock (see `stall.rs`), so a
//! client that stops pulling one stream is cut even while its socket is
//! writable.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::stall::{StallClock, StallClocks};

/// Sentinel for "no head in progress" in [`ConnTracker::head_started`].
const NO_HEAD: u64 = u64::MAX;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the watchdog should do next, from [`ConnTracker::deadline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// A request is in flight: no timer runs.
    None,
    /// A request head must be complete by then.
    Head(Instant),
    /// The connection is idle and must see a request by then.
    Idle(Instant),
}

/// Shared state of one connection; times are milliseconds since `epoch`.
#[derive(Debug)]
pub(crate) struct ConnTracker {
    epoch: Instant,
    in_flight: AtomicUsize,
    head_started: AtomicU64,
    idle_since: AtomicU64,
    h2: AtomicBool,
    changed: Notify,
    stalls: StallClocks,
}

impl ConnTracker {
    /// A tracker for a connection accepted just now; `h2` when ALPN already
    /// settled the protocol.
    pub(crate) fn new(h2: bool) -> Arc<Self> {
        let epoch = Instant::now();
        Arc::new(Self {
            epoch,
            in_flight: AtomicUsize::new(0),
            head_started: AtomicU64::new(if h2 { NO_HEAD } else { 0 }),
            idle_since: AtomicU64::new(0),
            h2: AtomicBool::new(h2),
            changed: Notify::new(),
            stalls: StallClocks::new(epoch),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NO_HEAD - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Whether the connection speaks HTTP/2.
    pub(crate) fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Acquire)
    }

    /// The next timer to arm, given the configured timeouts.
    pub(crate) fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Deadline {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Deadline::None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head != NO_HEAD && !self.is_h2() {
            return Deadline::Head(self.at(head) + header_timeout);
        }
        Deadline::Idle(self.at(self.idle_since.load(Ordering::Acquire)) + idle_timeout)
    }

    /// When the connection must be cut because a response body has waited
    /// `write_timeout` for the client to take more; with requests in flight
    /// and none stalled, when to look again.
    pub(crate) fn stall_deadline(&self, write_timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(
            self.stalls
                .deadline(write_timeout)
                .unwrap_or_else(|| Instant::now() + write_timeout),
        )
    }

    /// Whether a body has waited `write_timeout` for the client by now.
    pub(crate) fn stalled(&self, write_timeout: Duration) -> bool {
        self.stalls
            .deadline(write_timeout)
            .is_some_and(|at| at <= Instant::now())
    }

    /// Resolves when the state changed in a way that can move the deadline.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == NO_HEAD
            && !self.is_h2()
        {
            self.head_started.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn mark_h2(&self) {
        self.h2.store(true, Ordering::Release);
        self.head_started.store(NO_HEAD, Ordering::Release);
        self.changed.notify_one();
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NO_HEAD, Ordering::Release);
        self.changed.notify_one();
        InFlight {
            tracker: Arc::clone(self),
        }
    }
}

/// Marks one request as in flight until dropped.
#[derive(Debug)]
struct InFlight {
    tracker: Arc<ConnTracker>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let tracker = &self.tracker;
        if tracker.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            tracker
                .idle_since
                .store(tracker.now_ms(), Ordering::Release);
            tracker.changed.notify_one();
        }
    }
}

/// Sniffs the first bytes for the h2c preface (plain TCP only).
#[derive(Debug)]
struct Sniff {
    seen: usize,
    done: bool,
}

impl Sniff {
    fn feed(&mut self, bytes: &[u8]) -> Option<bool> {
        let want = &H2_PREFACE[self.seen..];
        let n = want.len().min(bytes.len());
        if bytes[..n] != want[..n] {
            self.done = true;
            return Some(false);
        }
        self.seen += n;
        if self.seen == H2_PREFACE.len() {
            self.done = true;
            return Some(true);
        }
        None
    }
}

pin_project! {
    /// Reports reads to the tracker; a write (or flush) that makes no
    /// progress for `write_timeout` fails with `TimedOut`, which ends the
    /// connection: a client that stops reading cannot hold it, its buffers
    /// and the request behind it forever.
    #[derive(Debug)]
    pub(crate) struct TrackedIo<I> {
        #[pin]
        inner: I,
        tracker: Arc<ConnTracker>,
        sniff: Sniff,
        write_timeout: std::time::Duration,
        stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

/// Arms the stall timer on `Pending`, clears it on progress, and turns an
/// expired timer into `TimedOut`.
fn watch_stall<T>(
    polled: Poll<io::Result<T>>,
    stalled: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: std::time::Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    if polled.is_ready() {
        *stalled = None;
        return polled;
    }
    let timer = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    match timer.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {timeout:?} (write_timeout)"),
        ))),
        Poll::Pending => Poll::Pending,
    }
}

impl<I> TrackedIo<I> {
    /// Wraps `inner`; `sniff_h2` when the protocol is not known from ALPN.
    pub(crate) fn new(
        inner: I,
        tracker: Arc<ConnTracker>,
        sniff_h2: bool,
        write_timeout: std::time::Duration,
    ) -> Self {
        Self {
            inner,
            tracker,
            sniff: Sniff {
                seen: 0,
                done: !sniff_h2,
            },
            write_timeout,
            stalled: None,
        }
    }
}

impl<I: AsyncRead> AsyncRead for TrackedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        let fresh = &buf.filled()[before..];
        if !fresh.is_empty() {
            if !this.sniff.done && this.sniff.feed(fresh) == Some(true) {
                this.tracker.mark_h2();
            }
            this.tracker.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite> AsyncWrite for TrackedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        watch_stall(polled, this.stalled, *this.write_timeout, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let polled = this.inner.poll_flush(cx);
        watch_stall(polled, this.stalled, *this.write_timeout, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        watch_stall(polled, this.stalled, *this.write_timeout, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Wraps the caller's service so each request is tracked while in flight.
#[derive(Debug)]
pub(crate) struct TrackedService<S> {
    inner: S,
    tracker: Arc<ConnTracker>,
}

impl<S> TrackedService<S> {
    pub(crate) fn new(inner: S, tracker: Arc<ConnTracker>) -> Self {
        Self { inner, tracker }
    }
}

impl<S, B, Q> hyper::service::Service<Request<Q>> for TrackedService<S>
where
    S: hyper::service::Service<Request<Q>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<Q>) -> Self::Future {
        let guard = self.tracker.request_started();
        TrackedFuture {
            inner: self.inner.call(req),
            guard: Some(guard),
        }
    }
}

pin_project! {
    /// The service's future; moves the in-flight mark into the body.
    pub(crate) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(result.map(|response| {
            response.map(|inner| {
                let clock = guard.as_ref().map(|g| g.tracker.stalls.start());
                TrackedBody {
                    inner,
                    guard,
                    clock,
                }
            })
        }))
    }
}

pin_project! {
    /// The response body; the request stops being in flight when it ends,
    /// and its stall clock runs while it waits for the client.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
        clock: Option<Arc<StallClock>>,
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some(clock) = this.clock.as_deref() {
            match (&polled, this.guard.as_ref()) {
                (Poll::Ready(Some(_)), Some(guard)) => guard.tracker.stalls.delivered(clock),
                _ => StallClocks::waiting_on_us(clock),
            }
        }
        let frame = ready!(polled);
        if frame.is_none() {
            this.guard.take();
            this.clock.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_detects_preface_across_reads() {
        let mut sniff = Sniff {
            seen: 0,
            done: false,
        };
        assert_eq!(sniff.feed(b"PRI * HT"), None);
        assert_eq!(sniff.feed(b"TP/2.0\r\n\r\nSM\r\n\r\nrest"), Some(true));
        let mut http1 = Sniff {
            seen: 0,
            done: false,
        };
        assert_eq!(http1.feed(b"GET / HTTP/1.1\r\n"), Some(false));
    }

    #[tokio::test]
    async fn deadlines_follow_request_lifecycle() {
        let header = Duration::from_secs(1);
        let idle = Duration::from_secs(5);
        let tracker = ConnTracker::new(false);
        assert!(matches!(tracker.deadline(header, idle), Deadline::Head(_)));

        let guard = tracker.request_started();
        assert_eq!(tracker.deadline(header, idle), Deadline::None);
        tracker.on_read();
        assert_eq!(tracker.deadline(header, idle), Deadline::None);
        drop(guard);
        assert!(matches!(tracker.deadline(header, idle), Deadline::Idle(_)));

        tracker.on_read();
        assert!(matches!(tracker.deadline(header, idle), Deadline::Head(_)));
        tracker.mark_h2();
        assert!(matches!(tracker.deadline(header, idle), Deadline::Idle(_)));
    }
}
