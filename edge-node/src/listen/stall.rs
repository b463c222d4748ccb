//! Response bodies the client stopped pulling.
//!
//! On HTTP/1 a client that stops reading stalls the socket, and
//! [`TrackedIo`](super::tracker::TrackedIo)'s write timer cuts it. On HTTP/2
//! a client can instead keep its flow-control window at zero: the socket
//! stays writable, hyper simply never asks the body for more, and the
//! stream (with whatever holds its body: a plugin instance, a fill, an
//! upstream connection) would wait forever. So every response body carries
//! a [`StallClock`]: *stalled* from the moment it hands a frame to hyper (or
//! is created) until hyper polls it again, *not stalled* while hyper waits
//! on the body itself (a slow origin is not the client's fault). The
//! connection's watchdog cuts the connection when any of its bodies has
//! been stalled for `write_timeout`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// Sentinel for "hyper is waiting on the body, not on the client".
const NOT_STALLED: u64 = u64::MAX;

/// One body's stall state: milliseconds since the connection's epoch at
/// which it started waiting for the client, or [`NOT_STALLED`].
#[derive(Debug)]
pub(crate) struct StallClock {
    since: AtomicU64,
}

/// The stall clocks of one connection's live response bodies.
#[derive(Debug)]
pub(crate) struct StallClocks {
    epoch: Instant,
    clocks: Mutex<Vec<Weak<StallClock>>>,
}

impl StallClocks {
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            clocks: Mutex::new(Vec::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NOT_STALLED - 1)
    }

    /// A clock for a body created now: stalled until hyper first polls it.
    pub(crate) fn start(&self) -> Arc<StallClock> {
        let clock = Arc::new(StallClock {
            since: AtomicU64::new(self.now_ms()),
        });
        let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the connection's concurrent streams: ended bodies are
        // dropped here before the list can outgrow twice the live ones.
        if clocks.len() >= 16 && clocks.len() == clocks.capacity() {
            clocks.retain(|w| w.strong_count() > 0);
        }
        clocks.push(Arc::downgrade(&clock));
        clock
    }

    /// The body handed hyper a frame: it now waits for the client.
    pub(crate) fn delivered(&self, clock: &StallClock) {
        clock.since.store(self.now_ms(), Ordering::Release);
    }

    /// hyper is waiting on the body (or it ended): not the client's fault.
    pub(crate) fn waiting_on_us(clock: &StallClock) {
        clock.since.store(NOT_STALLED, Ordering::Release);
    }

    /// When the longest-stalled body reaches `timeout`, or `None` when no
    /// body waits for the client. Drops the clocks of ended bodies.
    pub(crate) fn deadline(&self, timeout: Duration) -> Option<Instant> {
        let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
        clocks.retain(|w| w.strong_count() > 0);
        clocks
            .iter()
            .filter_map(Weak::upgrade)
            .map(|c| c.since.load(Ordering::Acquire))
            .filter(|&since| since != NOT_STALLED)
            .min()
            .map(|since| self.epoch + Duration::from_millis(since) + timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_is_stalled_only_while_it_waits_for_the_client() {
        let clocks = StallClocks::new(Instant::now());
        let timeout = Duration::from_secs(30);
        assert_eq!(clocks.deadline(timeout), None);
        let body = clocks.start();
        let first = clocks
            .deadline(timeout)
            .expect("new body waits for its first poll");
        StallClocks::waiting_on_us(&body);
        assert_eq!(clocks.deadline(timeout), None, "hyper waits on the body");
        clocks.delivered(&body);
        let later = clocks.deadline(timeout).unwrap();
        assert!(later >= first, "{later:?} {first:?}");
        drop(body);
        assert_eq!(clocks.deadline(timeout), None, "an ended body is forgotten");
    }

    #[tokio::test]
    async fn ended_bodies_do_not_accumulate() {
        let clocks = StallClocks::new(Instant::now());
        for _ in 0..10_000 {
            drop(clocks.start());
        }
        assert!(clocks.clocks.lock().unwrap().len() <= 64);
    }
}
