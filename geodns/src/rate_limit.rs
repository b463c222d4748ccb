//! Response rate limiting for UDP, as BIND's and Knot's RRL do it: replies
//! are counted per client prefix (/24 and /56 by default) in one-second
//! windows; past the rate a reply is dropped, and every `slip`-th one is
//! sent as an empty truncated reply instead, so a real client behind the
//! prefix retries over TCP while a spoofed victim receives nothing
//! amplified.
//!
//! The table is a fixed array of atomic slots shared by every UDP worker
//! (SO_REUSEPORT spreads one client's ports over the workers, so per-worker
//! tables would multiply the rate): a flood of spoofed sources cannot grow
//! it, and a check is one hash and one compare-and-swap. (`governor`'s keyed
//! limiter keeps a map entry per key until pruned, which a spoofed flood
//! grows without bound.) A prefix whose slot another prefix takes starts a
//! fresh window: collisions make limiting looser, never stricter.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::config::RateLimitConfig;

/// What to do with one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Send an empty reply with TC set instead.
    Slip,
    Drop,
}

/// Slot layout: tag (24 bits) | window second (16 bits) | count (24 bits).
const COUNT_BITS: u32 = 24;
const SECOND_BITS: u32 = 16;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const SECOND_MASK: u64 = (1 << SECOND_BITS) - 1;

#[derive(Debug)]
pub struct RateLimiter {
    slots: Box<[AtomicU64]>,
    rate: u64,
    slip: u64,
    v4_mask: u32,
    v6_mask: u128,
    exempt: Vec<ipnet::IpNet>,
    /// Per-process random multiplier, so nobody outside can aim prefixes
    /// at one slot.
    seed: u64,
    started: Instant,
}

impl RateLimiter {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            slots: (0..config.table_size).map(|_| AtomicU64::new(0)).collect(),
            rate: u64::from(config.responses_per_second),
            slip: u64::from(config.slip),
            v4_mask: u32::MAX << (32 - u32::from(config.ipv4_prefix)),
            v6_mask: u128::MAX << (128 - u32::from(config.ipv6_prefix)),
            exempt: config.exempt.clone(),
            seed: rand::random::<u64>() | 1,
            started: Instant::now(),
        }
    }

    /// Counts one reply to `client` and says what to do with it.
    pub fn check(&self, client: IpAddr) -> Verdict {
        let client = match client {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        if self.exempt.iter().any(|net| net.contains(&client)) {
            return Verdict::Answer;
        }
        let key = match client {
            IpAddr::V4(a) => u128::from(u32::from(a) & self.v4_mask) | (1 << 127),
            IpAddr::V6(a) => u128::from(a) & self.v6_mask,
        };
        let hash = ((key as u64) ^ ((key >> 64) as u64).rotate_left(29)).wrapping_mul(self.seed);
        let index = (hash >> 32) as usize & (self.slots.len() - 1);
        let tag = hash & 0xff_ffff;
        let second = self.started.elapsed().as_secs() & SECOND_MASK;
        let fresh = (tag << (COUNT_BITS + SECOND_BITS)) | (second << COUNT_BITS) | 1;
        let slot = &self.slots[index];
        let mut old = slot.load(Ordering::Relaxed);
        loop {
            let same = old >> COUNT_BITS == fresh >> COUNT_BITS;
            let count = if same { old & COUNT_MASK } else { 0 };
            let new = if same {
                old + u64::from(count < COUNT_MASK)
            } else {
                fresh
            };
            match slot.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return self.verdict(count + 1),
                Err(current) => old = current,
            }
        }
    }

    /// The verdict for the `n`th reply of a window.
    fn verdict(&self, n: u64) -> Verdict {
        if n <= self.rate {
            Verdict::Answer
        } else if self.slip > 0 && (n - self.rate).is_multiple_of(self.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, slip: u32, exempt: &[&str]) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            responses_per_second: rate,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            table_size: 1024,
            exempt: exempt.iter().map(|c| c.parse().unwrap()).collect(),
        })
    }

    fn verdicts(l: &RateLimiter, ip: &str, n: usize) -> (usize, usize, usize) {
        let ip: IpAddr = ip.parse().unwrap();
        let mut counts = (0, 0, 0);
        for _ in 0..n {
            match l.check(ip) {
                Verdict::Answer => counts.0 += 1,
                Verdict::Slip => counts.1 += 1,
                Verdict::Drop => counts.2 += 1,
            }
        }
        counts
    }

    // Each test runs within microseconds of its limiter's start, so in
    // its first one-second window.

    #[test]
    fn a_prefix_gets_its_rate_then_every_slipth_reply_truncated() {
        let l = limiter(10, 2, &[]);
        assert_eq!(verdicts(&l, "192.0.2.7", 30), (10, 10, 10));
    }

    #[test]
    fn addresses_of_one_prefix_share_it_and_other_prefixes_do_not() {
        let l = limiter(5, 0, &[]);
        assert_eq!(verdicts(&l, "192.0.2.1", 5).0, 5);
        assert_eq!(verdicts(&l, "192.0.2.200", 5).0, 0, "the same /24");
        assert_eq!(verdicts(&l, "::ffff:192.0.2.9", 5).0, 0, "v4-mapped");
        assert_eq!(verdicts(&l, "198.51.100.1", 5).0, 5, "another /24");
        assert_eq!(verdicts(&l, "2001:db8:0:1::1", 5).0, 5);
        assert_eq!(verdicts(&l, "2001:db8:0:1:ffff::1", 5).0, 0, "the same /56");
        assert_eq!(verdicts(&l, "2001:db8:0:100::1", 5).0, 5, "another /56");
    }

    #[test]
    fn exempt_sources_are_never_limited() {
        let l = limiter(1, 0, &["127.0.0.1/32"]);
        assert_eq!(verdicts(&l, "127.0.0.1", 100).0, 100);
        assert!(verdicts(&l, "127.0.0.2", 100).0 < 100);
    }

    #[test]
    fn slip_zero_drops_and_slip_one_truncates_everything_past_the_rate() {
        let (a, s, _) = verdicts(&limiter(1, 0, &[]), "192.0.2.1", 10);
        assert_eq!(s, 0, "{a}");
        let (a, s, d) = verdicts(&limiter(1, 1, &[]), "192.0.2.1", 10);
        assert_eq!((a + s, d), (10, 0));
    }
}
