//! The queue API (`/queues/...` on the origin): declaring queues, sending
//! messages, leasing, settling (ack or retry), the dead-letter queue.
//!
//! Delivery is at least once. A lease hides a message for its visibility
//! timeout; a consumer settles it with the [`Receipt`] it was given (the
//! message id and the delivery attempt), so a late ack from a consumer
//! whose lease expired and whose message went to another consumer is
//! reported as stale instead of deleting that other delivery.
//!
//! Bodies are UTF-8 text (JSON in practice), up to [`MAX_BODY`]. The origin
//! keeps a body over [`INLINE_BODY`] as a content-addressed blob (copied to
//! a majority of regions like an upload) and the replicated message holds
//! only its [`BlobRef`], so large payloads cost the Raft log and every
//! region's memory a few dozen bytes; leases and peeks answer with the
//! body itself. Binary payloads belong in an asset, with the message naming
//! it, as the photo example does.

use serde::{Deserialize, Serialize};

use crate::names::QueueName;

/// Most messages in one send, lease or settle request.
pub const MAX_BATCH: usize = 1000;
/// Largest message body a producer may send, in bytes.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Bodies longer than this are stored as blobs by the origin.
pub const INLINE_BODY: usize = 64 * 1024;
/// Longest delay of a message or a retry: seven days.
pub const MAX_DELAY_S: u64 = 7 * 24 * 3600;
/// Longest a lease request waits for a message (long poll).
pub const MAX_WAIT_S: u64 = 20;
/// Longest visibility timeout.
pub const MAX_VISIBILITY_S: u64 = 12 * 3600;
/// Longest retention of a message: fourteen days.
pub const MAX_RETENTION_S: u64 = 14 * 24 * 3600;
/// Most messages one queue may hold (its `max_messages` is at most this).
pub const MAX_MESSAGES: u64 = 10_000_000;
/// Largest `max_bytes` of a queue.
pub const MAX_QUEUE_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Most delivery attempts a queue may allow.
pub const MAX_ATTEMPTS: u32 = 1000;
/// Longest dedup id and ordering key.
pub const MAX_TAG: usize = 128;

/// Why a queue spec or a message is refused (a 400 that names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQueueInput {
    #[error("`{field}` is {value}, but must be between {min} and {max}")]
    OutOfRange {
        field: String,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("`{field}` is empty or longer than {MAX_TAG} bytes, or has control characters")]
    Tag { field: String },
    #[error("`{field}` is {len} bytes; a message body is at most {MAX_BODY} bytes")]
    BodyTooLarge { field: String, len: usize },
    #[error("`{field}` holds {len} entries; a request holds 1 to {MAX_BATCH}")]
    Batch { field: &'static str, len: usize },
    #[error("`{field}` is set only by the origin (send the body; large ones become blobs)")]
    BlobFromClient { field: String },
    #[error(
        "`{field}` is not a blob reference (64 lowercase hex digits, a body of at most {MAX_BODY} bytes)"
    )]
    BadBlob { field: String },
}

/// A message body kept as a content-addressed blob in the origin's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
}

impl BlobRef {
    fn valid(&self) -> bool {
        self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && self.size <= MAX_BODY as u64
    }
}

fn range(
    field: impl Into<String>,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), InvalidQueueInput> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(InvalidQueueInput::OutOfRange {
        field: field.into(),
        value,
        min,
        max,
    })
}

fn tag(field: String, value: &str) -> Result<(), InvalidQueueInput> {
    if value.is_empty() || value.len() > MAX_TAG || value.chars().any(char::is_control) {
        return Err(InvalidQueueInput::Tag { field });
    }
    Ok(())
}

fn batch(field: &'static str, len: usize) -> Result<(), InvalidQueueInput> {
    if (1..=MAX_BATCH).contains(&len) {
        return Ok(());
    }
    Err(InvalidQueueInput::Batch { field, len })
}

/// `PUT /queues/{name}`: how a queue behaves. Every field has a default,
/// so `{}` declares a queue with the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSpec {
    /// How long a lease hides a message before it is delivered again.
    pub visibility_timeout_s: u64,
    /// Deliveries before a message goes to the dead-letter queue (or is
    /// dropped, without one).
    pub max_attempts: u32,
    /// How long a message is kept, delivered or not.
    pub retention_s: u64,
    /// Whether messages that used up their attempts are kept in the
    /// queue's dead-letter queue (else they are dropped).
    pub dead_letter: bool,
    /// Most messages the queue holds; a send beyond it gets 429.
    pub max_messages: u64,
    /// Most bytes the queue holds (bodies, tags and ~100 bytes per
    /// message, dead letters included): every region keeps its queues in
    /// memory, so this is what a queue may cost each of them.
    pub max_bytes: u64,
    /// How long a dedup id is remembered: a send repeating it within the
    /// window is accepted and not enqueued again.
    pub dedup_window_s: u64,
}

impl Default for QueueSpec {
    fn default() -> Self {
        Self {
            visibility_timeout_s: 30,
            max_attempts: 5,
            retention_s: 4 * 24 * 3600,
            dead_letter: true,
            max_messages: 100_000,
            max_bytes: 64 * 1024 * 1024,
            dedup_window_s: 300,
        }
    }
}

impl QueueSpec {
    pub fn check(&self) -> Result<(), InvalidQueueInput> {
        range(
            "visibility_timeout_s",
            self.visibility_timeout_s,
            1,
            MAX_VISIBILITY_S,
        )?;
        range(
            "max_attempts",
            self.max_attempts.into(),
            1,
            MAX_ATTEMPTS.into(),
        )?;
        range("retention_s", self.retention_s, 60, MAX_RETENTION_S)?;
        range("max_messages", self.max_messages, 1, MAX_MESSAGES)?;
        range("max_bytes", self.max_bytes, 1024, MAX_QUEUE_BYTES)?;
        range("dedup_window_s", self.dedup_window_s, 0, MAX_RETENTION_S)
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub body: String,
    /// Seconds before the message is first delivered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_s: u64,
    /// A send repeating a dedup id within the queue's window is accepted
    /// and answered with the first message's id, and not enqueued again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    /// Messages with one ordering key are delivered in the order sent, one
    /// at a time: the next is leased once the one before is acked or dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    /// Set by the origin for a body over [`INLINE_BODY`] (then `body` is
    /// empty); a producer's is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobRef>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl NewMessage {
    /// A message with `body` and no options.
    pub fn text(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            delay_s: 0,
            dedup_id: None,
            ordering_key: None,
            blob: None,
        }
    }

    /// The body's length, wherever it is kept.
    pub fn body_len(&self) -> u64 {
        self.blob
            .as_ref()
            .map_or(self.body.len() as u64, |b| b.size)
    }

    /// Checks the message as entry `index` of a send.
    pub fn check(&self, index: usize) -> Result<(), InvalidQueueInput> {
        let field = |name: &str| format!("messages[{index}].{name}");
        if let Some(blob) = &self.blob
            && (!blob.valid() || !self.body.is_empty())
        {
            return Err(InvalidQueueInput::BadBlob {
                field: field("blob"),
            });
        }
        if self.body.len() > MAX_BODY {
            return Err(InvalidQueueInput::BodyTooLarge {
                field: field("body"),
                len: self.body.len(),
            });
        }
        range(field("delay_s"), self.delay_s, 0, MAX_DELAY_S)?;
        if let Some(id) = &self.dedup_id {
            tag(field("dedup_id"), id)?;
        }
        if let Some(key) = &self.ordering_key {
            tag(field("ordering_key"), key)?;
        }
        Ok(())
    }
}

/// `POST /queues/{name}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub messages: Vec<NewMessage>,
}

impl SendRequest {
    pub fn check(&self) -> Result<(), InvalidQueueInput> {
        batch("messages", self.messages.len())?;
        self.messages
            .iter()
            .enumerate()
            .try_for_each(|(i, m)| m.check(i))
    }
}

/// One sent message, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub id: u64,
    /// The dedup id was seen within the window: nothing new was enqueued,
    /// and `id` is the first message's.
    #[serde(default)]
    pub duplicate: bool,
}

/// What a send answers, once a majority of regions holds the messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResponse {
    pub messages: Vec<Sent>,
}

/// `POST /queues/{name}/lease`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseRequest {
    /// Most messages to lease.
    pub max: usize,
    /// How long to wait for a message when none is ready (long poll).
    pub wait_s: u64,
    /// This lease's visibility timeout, instead of the queue's.
    pub visibility_timeout_s: Option<u64>,
    /// Chosen by the consumer (1 to 128 bytes, unique per lease). A lease
    /// retried with its id after its answer was lost (a timeout, a
    /// failover) returns the messages the first one leased, still held,
    /// instead of leaving them hidden until the visibility timeout ends.
    pub request_id: Option<String>,
}

impl Default for LeaseRequest {
    fn default() -> Self {
        Self {
            max: 1,
            wait_s: 0,
            visibility_timeout_s: None,
            request_id: None,
        }
    }
}

impl LeaseRequest {
    pub fn check(&self) -> Result<(), InvalidQueueInput> {
        batch("max", self.max)?;
        range("wait_s", self.wait_s, 0, MAX_WAIT_S)?;
        if let Some(v) = self.visibility_timeout_s {
            range("visibility_timeout_s", v, 1, MAX_VISIBILITY_S)?;
        }
        if let Some(id) = &self.request_id {
            tag("request_id".into(), id)?;
        }
        Ok(())
    }
}

/// Names one delivery of one message, to settle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub id: u64,
    /// The delivery attempt the lease was for (1 for the first).
    pub attempt: u32,
}

/// One leased message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub receipt: Receipt,
    pub body: String,
    /// Only between the origin's replicated state and its answer, which
    /// carries the blob's bytes in `body` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobRef>,
    /// When the message was accepted (milliseconds since the Unix epoch).
    pub enqueued_at_ms: u64,
    /// When the lease ends and the message is delivered again.
    pub lease_until_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
}

/// What a lease answers: possibly no message, after `wait_s`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leased {
    pub messages: Vec<Delivery>,
}

/// `POST /queues/{name}/ack`: deletes the messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub receipts: Vec<Receipt>,
}

impl AckRequest {
    pub fn check(&self) -> Result<(), InvalidQueueInput> {
        batch("receipts", self.receipts.len())
    }
}

/// One message to deliver again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub receipt: Receipt,
    /// Seconds before the next delivery; without it the queue backs off
    /// exponentially (1 s, 2 s, 4 s, … up to [`MAX_BACKOFF_S`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<u64>,
}

/// Longest backoff between deliveries when a retry names no delay.
pub const MAX_BACKOFF_S: u64 = 600;

/// `POST /queues/{name}/nack`: the messages are delivered again later, or
/// go to the dead-letter queue when they used up their attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    pub retries: Vec<Retry>,
}

impl NackRequest {
    pub fn check(&self) -> Result<(), InvalidQueueInput> {
        batch("retries", self.retries.len())?;
        for (i, r) in self.retries.iter().enumerate() {
            if let Some(d) = r.delay_s {
                range(format!("retries[{i}].delay_s"), d, 0, MAX_DELAY_S)?;
            }
        }
        Ok(())
    }
}

/// What an ack or a nack answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// Ids acked (deleted) or scheduled for another delivery, by this
    /// request or by an earlier one with the same receipt (a retry after
    /// a lost answer is answered the same and changes nothing).
    pub settled: Vec<u64>,
    /// Ids whose receipt is not the current delivery (the lease expired
    /// and the message was leased again, or it is gone): nothing changed.
    pub stale: Vec<u64>,
    /// Ids moved to the dead-letter queue (a nack on the last attempt).
    #[serde(default)]
    pub dead_lettered: Vec<u64>,
}

/// `GET /queues/{name}` and each entry of `GET /queues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub name: QueueName,
    pub spec: QueueSpec,
    pub paused: bool,
    /// Messages held, leased or not (not counting dead letters).
    pub depth: u64,
    /// Messages ready to be leased now.
    pub ready: u64,
    /// Messages waiting for their delay or backoff.
    pub delayed: u64,
    /// Messages leased and not yet settled.
    pub in_flight: u64,
    /// Age of the oldest message held, in seconds.
    pub oldest_age_s: u64,
    /// Messages in the dead-letter queue.
    pub dead_letters: u64,
    /// Totals since the queue was declared.
    pub sent: u64,
    pub acked: u64,
    pub redeliveries: u64,
}

/// `GET /queues`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueListing {
    pub queues: Vec<QueueStats>,
}

/// A message as `GET /queues/{name}/messages` (peek, no lease) and
/// `GET /queues/{name}/dlq` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: u64,
    pub body: String,
    /// As in [`Delivery`]: resolved into `body` before the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobRef>,
    /// Deliveries so far.
    pub attempts: u32,
    pub enqueued_at_ms: u64,
    /// When it is (next) deliverable; for a dead letter, when it died.
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
}

/// A page of [`StoredMessage`]s, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<StoredMessage>,
    /// More messages follow: ask again with `after=<last id>`.
    pub truncated: bool,
}

/// `POST /queues/{name}/dlq/replay`: moves dead letters back into the
/// queue with fresh attempts; all of them without `ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayRequest {
    pub ids: Option<Vec<u64>>,
}

/// What a replay or a dead-letter purge answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub count: u64,
}

/// `/queues/{name}` and the paths under it.
pub fn queue_path(name: &QueueName, rest: &str) -> String {
    if rest.is_empty() {
        format!("/queues/{name}")
    } else {
        format!("/queues/{name}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_spec_takes_the_defaults() {
        let spec: QueueSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec, QueueSpec::default());
        assert!(spec.check().is_ok());
        assert!(serde_json::from_str::<QueueSpec>(r#"{"visibility":3}"#).is_err());
    }

    #[test]
    fn checks_name_the_field() {
        let spec = QueueSpec {
            max_attempts: 0,
            ..QueueSpec::default()
        };
        let e = spec.check().unwrap_err().to_string();
        assert!(e.contains("`max_attempts`"), "{e}");
        let mut send = SendRequest {
            messages: vec![NewMessage::text("a"), NewMessage::text("b")],
        };
        send.messages[1].delay_s = MAX_DELAY_S + 1;
        let e = send.check().unwrap_err().to_string();
        assert!(e.contains("`messages[1].delay_s`"), "{e}");
        send.messages[1].delay_s = 0;
        send.messages[0].dedup_id = Some(String::new());
        let e = send.check().unwrap_err().to_string();
        assert!(e.contains("messages[0].dedup_id"), "{e}");
        assert!(SendRequest { messages: vec![] }.check().is_err());
        let lease = LeaseRequest {
            max: MAX_BATCH + 1,
            ..LeaseRequest::default()
        };
        assert!(lease.check().unwrap_err().to_string().contains("`max`"));
    }

    #[test]
    fn a_negative_delay_does_not_parse() {
        let e = serde_json::from_str::<NewMessage>(r#"{"body":"x","delay_s":-1}"#).unwrap_err();
        assert!(e.to_string().contains("-1"), "{e}");
    }
}
