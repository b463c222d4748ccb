//! One queue: its replicated data, the index derived from it, and what
//! each command does to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use waypost_api::queues::{
    Delivery, MAX_BACKOFF_S, NewMessage, QueueSpec, Receipt, Retry, Sent, Settled,
};

use super::held::{Index, MESSAGE_OVERHEAD, Message};
use super::recent_acks::RecentAcks;
use super::{LEASE_BYTES, QueueReply, ms};
use crate::raft::validate::Refusal;

mod views;

pub use views::Contents;

/// Most lease request ids a queue remembers (the oldest go first).
const MAX_REMEMBERED_LEASES: usize = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Totals {
    sent: u64,
    acked: u64,
    redeliveries: u64,
}

/// A queue's replicated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct QueueData {
    spec: QueueSpec,
    paused: bool,
    next_id: u64,
    clock_ms: u64,
    messages: BTreeMap<u64, Message>,
    dead: BTreeMap<u64, Message>,
    /// Dedup id → (the message it named, when it is forgotten).
    dedup: BTreeMap<String, (u64, u64)>,
    totals: Totals,
    /// Lease request id → (when it is forgotten, the receipts it leased):
    /// a lease retried with its id after a lost answer gets the same
    /// messages again instead of hiding them from everyone until their
    /// lease ends.
    #[serde(default)]
    leases: BTreeMap<String, (u64, Vec<Receipt>)>,
    /// Receipts acked recently: a retried ack answers the same.
    #[serde(default)]
    acked: RecentAcks,
}

/// One queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "QueueData")]
pub struct Queue {
    #[serde(flatten)]
    data: QueueData,
    #[serde(skip)]
    index: Index,
}

impl From<QueueData> for Queue {
    fn from(data: QueueData) -> Self {
        let mut index = Index::default();
        for (id, m) in &data.messages {
            index.hold(m);
            match &m.ordering_key {
                Some(k) => {
                    index.keys.entry(k.clone()).or_default().insert(*id);
                }
                None => {
                    index.schedule.insert((m.at_ms, *id));
                }
            }
        }
        for ids in index.keys.values() {
            let first = *ids.first().expect("key sets are never empty");
            index.schedule.insert((data.messages[&first].at_ms, first));
        }
        for m in data.dead.values() {
            index.hold(m);
        }
        for (dedup_id, (_, expires)) in &data.dedup {
            index.dedup_expiry.insert((*expires, dedup_id.clone()));
        }
        for (request_id, (expires, _)) in &data.leases {
            index.lease_expiry.insert((*expires, request_id.clone()));
        }
        Self { data, index }
    }
}

impl Queue {
    pub(super) fn new(spec: QueueSpec, now_ms: u64) -> Self {
        QueueData {
            spec,
            paused: false,
            next_id: 1,
            clock_ms: now_ms,
            messages: BTreeMap::new(),
            dead: BTreeMap::new(),
            dedup: BTreeMap::new(),
            totals: Totals::default(),
            leases: BTreeMap::new(),
            acked: RecentAcks::default(),
        }
        .into()
    }

    pub(super) fn set_spec(&mut self, spec: QueueSpec) {
        self.data.spec = spec;
    }

    pub(super) fn pause(&mut self, paused: bool) {
        self.data.paused = paused;
    }

    /// Drops every dead letter; how many there were.
    pub(super) fn purge_dead(&mut self) -> u64 {
        let dead = std::mem::take(&mut self.data.dead);
        for m in dead.values() {
            self.index.release(m);
        }
        dead.len() as u64
    }

    /// Advances the queue's clock to `now_ms` (never back) and returns it.
    pub(super) fn tick(&mut self, now_ms: u64) -> u64 {
        self.data.clock_ms = self.data.clock_ms.max(now_ms);
        self.data.clock_ms
    }

    /// Drops messages and dead letters older than the retention (counted
    /// from the first enqueue, as SQS does), and dedup ids past their
    /// window. Ids grow with enqueue time, so the oldest are first.
    pub(super) fn expire(&mut self, now: u64) {
        let retention = ms(self.data.spec.retention_s);
        let kept = |m: &Message| m.enqueued_ms.saturating_add(retention) > now;
        while let Some((&id, m)) = self.data.messages.first_key_value() {
            if kept(m) {
                break;
            }
            self.remove(id);
        }
        while let Some((&id, m)) = self.data.dead.first_key_value() {
            if kept(m) {
                break;
            }
            let m = self.data.dead.remove(&id).expect("just seen");
            self.index.release(&m);
        }
        while let Some((expires, _)) = self.index.dedup_expiry.first() {
            if *expires > now {
                break;
            }
            let (_, dedup_id) = self.index.dedup_expiry.pop_first().expect("just seen");
            self.data.dedup.remove(&dedup_id);
        }
        while let Some((expires, _)) = self.index.lease_expiry.first() {
            if *expires > now && self.data.leases.len() <= MAX_REMEMBERED_LEASES {
                break;
            }
            let (_, request_id) = self.index.lease_expiry.pop_first().expect("just seen");
            self.data.leases.remove(&request_id);
        }
        self.data.acked.expire(now);
    }

    pub(super) fn send(
        &mut self,
        messages: Vec<NewMessage>,
        now: u64,
    ) -> Result<QueueReply, Refusal> {
        let spec = &self.data.spec;
        let fresh: Vec<bool> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let dedup = m.dedup_id.as_ref();
                let earlier = messages[..i]
                    .iter()
                    .any(|o| dedup.is_some() && o.dedup_id.as_ref() == dedup);
                !earlier && dedup.is_none_or(|d| !self.data.dedup.contains_key(d))
            })
            .collect();
        let count = fresh.iter().filter(|f| **f).count() as u64;
        let bytes: u64 = messages
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| **f)
            .map(|(m, _)| {
                m.body_len()
                    + (m.dedup_id.as_ref().map_or(0, String::len)
                        + m.ordering_key.as_ref().map_or(0, String::len))
                        as u64
                    + MESSAGE_OVERHEAD
            })
            .sum();
        let held = self.data.messages.len() as u64;
        if held + count > spec.max_messages || self.index.bytes + bytes > spec.max_bytes {
            return Err(Refusal::Exhausted {
                reason: format!(
                    "the queue holds {held} messages and {} bytes; this send of {count} \
                     messages and {bytes} bytes would pass its max_messages = {} or max_bytes \
                     = {}. Consumers must catch up (or raise the limits with PUT /queues/<name>); \
                     nothing was enqueued",
                    self.index.bytes, spec.max_messages, spec.max_bytes
                ),
            });
        }
        let window = ms(spec.dedup_window_s);
        let mut sent = Vec::with_capacity(messages.len());
        for m in messages {
            if let Some(&(id, _)) = m.dedup_id.as_ref().and_then(|d| self.data.dedup.get(d)) {
                sent.push(Sent {
                    id,
                    duplicate: true,
                });
                continue;
            }
            let id = self.data.next_id;
            self.data.next_id += 1;
            if let Some(d) = &m.dedup_id
                && window > 0
            {
                let expires = now.saturating_add(window);
                self.data.dedup.insert(d.clone(), (id, expires));
                self.index.dedup_expiry.insert((expires, d.clone()));
            }
            self.insert(
                id,
                Message {
                    body: m.body,
                    blob: m.blob,
                    enqueued_ms: now,
                    at_ms: now.saturating_add(ms(m.delay_s)),
                    attempts: 0,
                    leased: false,
                    ordering_key: m.ordering_key,
                    dedup_id: m.dedup_id,
                },
            );
            self.data.totals.sent += 1;
            sent.push(Sent {
                id,
                duplicate: false,
            });
        }
        Ok(QueueReply::Sent { messages: sent })
    }

    pub(super) fn lease(
        &mut self,
        max: usize,
        visibility_ms: Option<u64>,
        request_id: Option<String>,
        now: u64,
    ) -> QueueReply {
        if let Some((_, receipts)) = request_id.as_ref().and_then(|r| self.data.leases.get(r)) {
            let again = receipts
                .iter()
                .filter(|r| self.current(r))
                .map(|r| self.delivery(r.id))
                .collect();
            return QueueReply::Leased { messages: again };
        }
        let mut out = Vec::new();
        if self.data.paused {
            return QueueReply::Leased { messages: out };
        }
        let visibility = visibility_ms.unwrap_or(ms(self.data.spec.visibility_timeout_s));
        let mut bytes = 0;
        while out.len() < max && (out.is_empty() || bytes < LEASE_BYTES) {
            let Some(&(due, id)) = self.index.schedule.first() else {
                break;
            };
            if due > now {
                break;
            }
            if self.data.messages[&id].attempts >= self.data.spec.max_attempts {
                self.kill(id, now);
                continue;
            }
            self.index.schedule.remove(&(due, id));
            let m = self
                .data
                .messages
                .get_mut(&id)
                .expect("scheduled ids are held");
            if m.attempts > 0 {
                self.data.totals.redeliveries += 1;
            }
            m.attempts += 1;
            m.leased = true;
            m.at_ms = now.saturating_add(visibility);
            self.index.schedule.insert((m.at_ms, id));
            bytes += m.body_len() as usize;
            out.push(self.delivery(id));
        }
        if let Some(request_id) = request_id
            && !out.is_empty()
        {
            let until = now.saturating_add(visibility);
            let receipts = out.iter().map(|d| d.receipt).collect();
            self.data
                .leases
                .insert(request_id.clone(), (until, receipts));
            self.index.lease_expiry.insert((until, request_id));
        }
        QueueReply::Leased { messages: out }
    }

    /// The current delivery of message `id` (held).
    fn delivery(&self, id: u64) -> Delivery {
        let m = &self.data.messages[&id];
        Delivery {
            receipt: Receipt {
                id,
                attempt: m.attempts,
            },
            body: m.body.clone(),
            blob: m.blob.clone(),
            enqueued_at_ms: m.enqueued_ms,
            lease_until_ms: m.at_ms,
            ordering_key: m.ordering_key.clone(),
        }
    }

    /// Whether `receipt` names the current delivery of a leased message.
    fn current(&self, receipt: &Receipt) -> bool {
        self.data
            .messages
            .get(&receipt.id)
            .is_some_and(|m| m.leased && m.attempts == receipt.attempt)
    }

    /// Deletes the messages `receipts` name. A receipt acked before (a
    /// retry whose first answer was lost) is answered as settled again
    /// and changes nothing.
    pub(super) fn ack(&mut self, receipts: &[Receipt], now: u64) -> QueueReply {
        let mut settled = Settled::default();
        for r in receipts {
            if self.current(r) {
                self.remove(r.id);
                self.data.totals.acked += 1;
                self.data.acked.remember(*r, now);
                settled.settled.push(r.id);
            } else if self.data.acked.contains(r) {
                settled.settled.push(r.id);
            } else {
                settled.stale.push(r.id);
            }
        }
        QueueReply::Settled { settled }
    }

    /// Schedules another delivery of each message `retries` name, or
    /// moves it to the dead letters on its last attempt. A retry of a nack
    /// already applied (the message waits, not leased, at the receipt's
    /// attempt, or died at it) answers the same and changes nothing.
    pub(super) fn nack(&mut self, retries: &[Retry], now: u64) -> QueueReply {
        let mut settled = Settled::default();
        for r in retries {
            let id = r.receipt.id;
            if !self.current(&r.receipt) {
                let at_attempt = |m: &Message| m.attempts == r.receipt.attempt;
                match (self.data.messages.get(&id), self.data.dead.get(&id)) {
                    (Some(m), _) if !m.leased && at_attempt(m) => settled.settled.push(id),
                    (None, Some(m)) if at_attempt(m) => settled.dead_lettered.push(id),
                    _ => settled.stale.push(id),
                }
                continue;
            }
            let attempts = self.data.messages[&id].attempts;
            if attempts >= self.data.spec.max_attempts {
                self.kill(id, now);
                settled.dead_lettered.push(id);
                continue;
            }
            let delay = r.delay_s.map_or_else(|| backoff_ms(attempts), ms);
            self.reschedule(id, now.saturating_add(delay));
            self.data.messages.get_mut(&id).expect("current").leased = false;
            settled.settled.push(id);
        }
        QueueReply::Settled { settled }
    }

    pub(super) fn replay(
        &mut self,
        ids: Option<Vec<u64>>,
        now: u64,
    ) -> Result<QueueReply, Refusal> {
        let ids: Vec<u64> = ids.unwrap_or_else(|| self.data.dead.keys().copied().collect());
        let ids: Vec<u64> = ids
            .into_iter()
            .filter(|id| self.data.dead.contains_key(id))
            .collect();
        let held = self.data.messages.len() as u64;
        if held + ids.len() as u64 > self.data.spec.max_messages {
            return Err(Refusal::Exhausted {
                reason: format!(
                    "replaying {} dead letters would pass the queue's max_messages = {}; \
                     replay fewer (ids) once consumers catch up",
                    ids.len(),
                    self.data.spec.max_messages
                ),
            });
        }
        for old in &ids {
            let mut m = self.data.dead.remove(old).expect("filtered");
            self.index.release(&m);
            let id = self.data.next_id;
            self.data.next_id += 1;
            m.attempts = 0;
            m.leased = false;
            m.at_ms = now;
            m.enqueued_ms = now;
            self.insert(id, m);
        }
        Ok(QueueReply::Moved {
            count: ids.len() as u64,
        })
    }

    fn insert(&mut self, id: u64, m: Message) {
        self.index.hold(&m);
        let first = match &m.ordering_key {
            Some(k) => {
                let ids = self.index.keys.entry(k.clone()).or_default();
                ids.insert(id);
                ids.len() == 1
            }
            None => true,
        };
        if first {
            self.index.schedule.insert((m.at_ms, id));
        }
        self.data.messages.insert(id, m);
    }

    /// Removes message `id`, scheduling the next one of its ordering key.
    fn remove(&mut self, id: u64) -> Option<Message> {
        let m = self.data.messages.remove(&id)?;
        self.index.release(&m);
        self.index.schedule.remove(&(m.at_ms, id));
        if let Some(k) = &m.ordering_key
            && let Some(ids) = self.index.keys.get_mut(k)
        {
            let was_first = ids.first() == Some(&id);
            ids.remove(&id);
            match ids.first() {
                None => {
                    self.index.keys.remove(k);
                }
                Some(&next) if was_first => {
                    self.index
                        .schedule
                        .insert((self.data.messages[&next].at_ms, next));
                }
                Some(_) => {}
            }
        }
        Some(m)
    }

    fn reschedule(&mut self, id: u64, at_ms: u64) {
        let m = self.data.messages.get_mut(&id).expect("held");
        if self.index.schedule.remove(&(m.at_ms, id)) {
            self.index.schedule.insert((at_ms, id));
        }
        m.at_ms = at_ms;
    }

    /// Moves message `id` to the dead letters (or drops it without them).
    fn kill(&mut self, id: u64, now: u64) {
        let Some(mut m) = self.remove(id) else { return };
        if !self.data.spec.dead_letter {
            return;
        }
        if self.data.dead.len() as u64 >= self.data.spec.max_messages
            && let Some((_, oldest)) = self.data.dead.pop_first()
        {
            self.index.release(&oldest);
        }
        m.leased = false;
        m.at_ms = now;
        self.index.hold(&m);
        self.data.dead.insert(id, m);
    }
}

/// The delay before delivery `attempts + 1` when a retry names none:
/// 1 s, 2 s, 4 s, … up to [`MAX_BACKOFF_S`].
fn backoff_ms(attempts: u32) -> u64 {
    let exponent = attempts.saturating_sub(1).min(20);
    ms((1u64 << exponent).min(MAX_BACKOFF_S))
}
