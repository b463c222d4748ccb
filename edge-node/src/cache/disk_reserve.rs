//! Disk space for fills in progress, reserved before it is written.
//!
//! The disk tier's index weighs only complete objects, so bytes still
//! arriving were invisible to it: 64 concurrent fills of large objects
//! could put several times the tier's capacity on disk before any was
//! indexed (and evicted room for). Now an eighth of `disk.capacity` is set
//! aside for fills in progress (the index holds the other seven eighths),
//! and every byte a fill writes is reserved from it first: a fill that
//! finds no room stops storing (its client still gets the whole response),
//! so the tier's files stay within `disk.capacity` (plus per-file slack).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The share of `disk.capacity` kept for fills in progress.
pub const IN_FLIGHT_SHARE: u64 = 8;

/// The bytes fills in progress may hold on disk.
#[derive(Debug)]
pub struct DiskReserve {
    limit: u64,
    used: AtomicU64,
}

impl DiskReserve {
    /// The reserve of a tier of `capacity` bytes.
    pub fn for_capacity(capacity: u64) -> Arc<Self> {
        Arc::new(Self {
            limit: (capacity / IN_FLIGHT_SHARE).max(1),
            used: AtomicU64::new(0),
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// One fill's share of the reserve, returned when it is dropped.
#[derive(Debug)]
pub struct Reservation {
    reserve: Arc<DiskReserve>,
    held: u64,
}

impl Reservation {
    pub fn new(reserve: Arc<DiskReserve>) -> Self {
        Self { reserve, held: 0 }
    }

    /// Holds at least `total` bytes, reserving the difference; `false`
    /// (nothing more taken) when the reserve has not that much left.
    pub fn grow_to(&mut self, total: u64) -> bool {
        let Some(n) = total.checked_sub(self.held).filter(|&n| n > 0) else {
            return true;
        };
        let taken = self
            .reserve
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n)
                    .filter(|&total| total <= self.reserve.limit)
            })
            .is_ok();
        if taken {
            self.held += n;
        }
        taken
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserve.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_share_an_eighth_of_the_tier_and_return_it() {
        let reserve = DiskReserve::for_capacity(800);
        let mut a = Reservation::new(reserve.clone());
        let mut b = Reservation::new(reserve.clone());
        assert!(a.grow_to(60));
        assert!(a.grow_to(30), "already held");
        assert!(!b.grow_to(50), "over the reserve");
        assert!(b.grow_to(40));
        assert_eq!(reserve.used(), 100);
        drop(a);
        assert_eq!(reserve.used(), 40);
        assert!(b.grow_to(100));
        drop(b);
        assert_eq!(reserve.used(), 0);
    }
}
