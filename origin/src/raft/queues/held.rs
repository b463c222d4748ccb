//! What a queue holds: one message as the replicated state keeps it, and
//! the index derived from the held messages (what is due, ordering keys,
//! expiries, bytes and blobs held).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use waypost_api::queues::{BlobRef, StoredMessage};

/// Bytes counted for a message besides its body, dedup id and key.
pub(super) const MESSAGE_OVERHEAD: u64 = 96;

/// One message as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Message {
    /// Empty when the body is kept as a blob.
    pub(super) body: String,
    /// The body, when it is kept as a blob (over `INLINE_BODY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) blob: Option<BlobRef>,
    pub(super) enqueued_ms: u64,
    /// When it is next deliverable: its delay or backoff, or its lease's
    /// end while leased; for a dead letter, when it died.
    pub(super) at_ms: u64,
    /// Deliveries so far.
    pub(super) attempts: u32,
    pub(super) leased: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ordering_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) dedup_id: Option<String>,
}

impl Message {
    pub(super) fn bytes(&self) -> u64 {
        let tags = self.ordering_key.as_ref().map_or(0, String::len)
            + self.dedup_id.as_ref().map_or(0, String::len);
        self.body_len() + tags as u64 + MESSAGE_OVERHEAD
    }

    /// The body's length, wherever it is kept.
    pub(super) fn body_len(&self) -> u64 {
        self.blob
            .as_ref()
            .map_or(self.body.len() as u64, |b| b.size)
    }

    pub(super) fn stored(&self, id: u64) -> StoredMessage {
        StoredMessage {
            id,
            body: self.body.clone(),
            blob: self.blob.clone(),
            attempts: self.attempts,
            enqueued_at_ms: self.enqueued_ms,
            at_ms: self.at_ms,
            ordering_key: self.ordering_key.clone(),
        }
    }
}

/// What is derived from a queue's replicated data, rebuilt when a
/// snapshot loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Index {
    /// (due time, id) of every message that may be leased once due.
    pub(super) schedule: BTreeSet<(u64, u64)>,
    /// Ordering key → ids of its messages; only the first is scheduled.
    pub(super) keys: BTreeMap<String, BTreeSet<u64>>,
    /// (expiry, dedup id), to forget dedup ids in order.
    pub(super) dedup_expiry: BTreeSet<(u64, String)>,
    /// (expiry, lease request id), likewise.
    pub(super) lease_expiry: BTreeSet<(u64, String)>,
    /// Bytes of messages and dead letters held.
    pub(super) bytes: u64,
    /// Blobs of the messages and dead letters held (a body sent twice is
    /// one blob), with how many hold each: the blob collector's view.
    pub(super) blobs: BTreeMap<String, u32>,
}

impl Index {
    /// Counts `m` as held.
    pub(super) fn hold(&mut self, m: &Message) {
        self.bytes += m.bytes();
        if let Some(b) = &m.blob {
            *self.blobs.entry(b.sha256.clone()).or_default() += 1;
        }
    }

    /// Counts `m` as no longer held.
    pub(super) fn release(&mut self, m: &Message) {
        self.bytes -= m.bytes();
        if let Some(b) = &m.blob
            && let Some(n) = self.blobs.get_mut(&b.sha256)
        {
            *n -= 1;
            if *n == 0 {
                self.blobs.remove(&b.sha256);
            }
        }
    }
}
