//! The receipts a queue acked recently, so that acking is idempotent.
//!
//! A consumer whose ack answer is lost (a leader killed after the commit,
//! a timeout) sends the same ack again, possibly to another region. The
//! message is gone by then; without this memory the retry would answer
//! `stale`, and the consumer could not tell its own settled work from a
//! lease that expired and went to someone else. A receipt names one
//! delivery (id and attempt) and ids are never reused, so remembering
//! `(id, attempt)` answers the retry exactly. SQS answers a repeated
//! delete the same way.
//!
//! The memory is part of the replicated state (every replica answers the
//! same), bounded by count and by age on the queue's own clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use waypost_api::queues::Receipt;

/// Most acked receipts a queue remembers (the oldest go first).
const MAX_REMEMBERED: usize = 32_768;
/// How long an acked receipt is remembered: far longer than any client
/// retries an ack whose answer it lost.
const REMEMBER_MS: u64 = 10 * 60 * 1000;

/// Acked receipts: id → (attempt, when it is forgotten).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RecentAcks {
    by_id: BTreeMap<u64, (u32, u64)>,
    /// (when it is forgotten, id): derived, in forgetting order.
    expiry: BTreeSet<(u64, u64)>,
}

impl RecentAcks {
    /// Remembers that `receipt` was acked at `now`.
    pub(super) fn remember(&mut self, receipt: Receipt, now: u64) {
        let forget_at = now.saturating_add(REMEMBER_MS);
        if let Some((_, old)) = self.by_id.insert(receipt.id, (receipt.attempt, forget_at)) {
            self.expiry.remove(&(old, receipt.id));
        }
        self.expiry.insert((forget_at, receipt.id));
        while self.by_id.len() > MAX_REMEMBERED {
            self.forget_oldest();
        }
    }

    /// Whether `receipt` was acked (and is still remembered).
    pub(super) fn contains(&self, receipt: &Receipt) -> bool {
        self.by_id
            .get(&receipt.id)
            .is_some_and(|(attempt, _)| *attempt == receipt.attempt)
    }

    /// Forgets what was acked more than the memory's age before `now`.
    pub(super) fn expire(&mut self, now: u64) {
        while self.expiry.first().is_some_and(|(at, _)| *at <= now) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, id)) = self.expiry.pop_first() {
            self.by_id.remove(&id);
        }
    }
}

impl Serialize for RecentAcks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.by_id.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RecentAcks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let by_id = BTreeMap::<u64, (u32, u64)>::deserialize(d)?;
        let expiry = by_id.iter().map(|(id, (_, at))| (*at, *id)).collect();
        Ok(Self { by_id, expiry })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: u64, attempt: u32) -> Receipt {
        Receipt { id, attempt }
    }

    #[test]
    fn remembers_the_exact_delivery_until_its_age_passes() {
        let mut acks = RecentAcks::default();
        acks.remember(receipt(7, 2), 1_000);
        assert!(acks.contains(&receipt(7, 2)));
        assert!(!acks.contains(&receipt(7, 1)), "another delivery of 7");
        assert!(!acks.contains(&receipt(8, 2)));
        acks.expire(1_000 + REMEMBER_MS - 1);
        assert!(acks.contains(&receipt(7, 2)));
        acks.expire(1_000 + REMEMBER_MS);
        assert!(!acks.contains(&receipt(7, 2)));
    }

    #[test]
    fn holds_at_most_its_count_dropping_the_oldest() {
        let mut acks = RecentAcks::default();
        for id in 0..MAX_REMEMBERED as u64 + 10 {
            acks.remember(receipt(id, 1), id);
        }
        assert_eq!(acks.by_id.len(), MAX_REMEMBERED);
        assert_eq!(acks.expiry.len(), MAX_REMEMBERED);
        assert!(!acks.contains(&receipt(9, 1)));
        assert!(acks.contains(&receipt(10, 1)));
    }

    #[test]
    fn a_snapshot_round_trip_rebuilds_the_forgetting_order() {
        let mut acks = RecentAcks::default();
        acks.remember(receipt(3, 1), 50);
        acks.remember(receipt(1, 4), 10);
        let json = serde_json::to_string(&acks).unwrap();
        let back: RecentAcks = serde_json::from_str(&json).unwrap();
        assert_eq!(back, acks);
    }
}
