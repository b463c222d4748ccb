//! What a queue shows without changing it: its figures, what a long
//! poll waits for, the blobs it holds, backups and pages of messages.

use std::collections::BTreeMap;

use waypost_api::QueueName;
use waypost_api::queues::{BlobRef, QueueSpec, QueueStats, StoredMessage};

use super::super::held::Message;
use super::Queue;

/// A queue's contents for a backup ([`Queue::contents`]).
pub struct Contents {
    pub spec: QueueSpec,
    pub messages: Vec<String>,
    pub dead_letters: Vec<String>,
    pub large_messages: Vec<BlobRef>,
    pub large_dead_letters: Vec<BlobRef>,
}

impl Queue {
    /// The queue's figures at `now_ms` (no earlier than its clock).
    pub fn stats(&self, name: &QueueName, now_ms: u64) -> QueueStats {
        let now = self.data.clock_ms.max(now_ms);
        let (mut in_flight, mut delayed) = (0, 0);
        for m in self.data.messages.values() {
            match (m.leased, m.at_ms > now) {
                (true, true) => in_flight += 1,
                (false, true) => delayed += 1,
                _ => {}
            }
        }
        let depth = self.data.messages.len() as u64;
        let oldest = self.data.messages.values().next();
        QueueStats {
            name: name.clone(),
            spec: self.data.spec.clone(),
            paused: self.data.paused,
            depth,
            ready: depth - in_flight - delayed,
            delayed,
            in_flight,
            oldest_age_s: oldest.map_or(0, |m| now.saturating_sub(m.enqueued_ms) / 1000),
            dead_letters: self.data.dead.len() as u64,
            sent: self.data.totals.sent,
            acked: self.data.totals.acked,
            redeliveries: self.data.totals.redeliveries,
        }
    }

    /// Whether a lease at `now_ms` would find a message (or a dead one to
    /// move): what a long-polling lease waits for.
    pub fn ready_at(&self) -> Option<u64> {
        if self.data.paused {
            return None;
        }
        self.index.schedule.first().map(|(due, _)| *due)
    }

    /// Whether a message or dead letter keeps its body in blob `sha256`.
    pub fn references_blob(&self, sha256: &str) -> bool {
        self.index.blobs.contains_key(sha256)
    }

    /// What a backup keeps of the queue: the spec, and every body held,
    /// oldest first: messages, dead letters, and those of each kept as
    /// blobs.
    pub fn contents(&self) -> Contents {
        let split = |held: &BTreeMap<u64, Message>| {
            let mut inline = Vec::new();
            let mut blobs = Vec::new();
            for m in held.values() {
                match &m.blob {
                    Some(b) => blobs.push(b.clone()),
                    None => inline.push(m.body.clone()),
                }
            }
            (inline, blobs)
        };
        let (messages, large_messages) = split(&self.data.messages);
        let (dead_letters, large_dead_letters) = split(&self.data.dead);
        Contents {
            spec: self.data.spec.clone(),
            messages,
            dead_letters,
            large_messages,
            large_dead_letters,
        }
    }

    /// Messages (or dead letters) after id `after`, oldest first: at most
    /// `limit` and `max_bytes` of bodies (at least one); whether more follow.
    pub fn page(
        &self,
        dead: bool,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> (Vec<StoredMessage>, bool) {
        let source = if dead {
            &self.data.dead
        } else {
            &self.data.messages
        };
        let mut page = Vec::new();
        let mut bytes = 0;
        for (id, m) in source.range(after.saturating_add(1)..) {
            let len = m.body_len() as usize;
            let full = page.len() == limit || bytes + len > max_bytes;
            if full && !page.is_empty() {
                return (page, true);
            }
            bytes += len;
            page.push(m.stored(*id));
        }
        (page, false)
    }
}
