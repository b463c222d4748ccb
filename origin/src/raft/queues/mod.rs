//! Durable queues in the replicated state: messages, leases, retries and
//! dead letters, changed only by committed [`QueueCommand`]s.
//!
//! Leases are replicated, not leader memory: leasing is one Raft entry per
//! batch, and in exchange a failover changes nothing a consumer sees: its
//! receipts stay valid on the new leader, and a message it holds is not
//! handed to another consumer before its lease ends. Time comes from the
//! proposer in the command (`now_ms`) and never runs backwards within a
//! queue, so every replica makes the same decisions.
//!
//! Each queue keeps an index of what may be leased next (`schedule`: due
//! time and id), holding per ordering key only the oldest message, so a
//! lease is O(batch · log n) however many messages wait behind a key.

mod held;
mod queue;
mod recent_acks;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use waypost_api::QueueName;
use waypost_api::queues::{
    Delivery, InvalidQueueInput, MAX_BATCH, MAX_TAG, MAX_VISIBILITY_S, NewMessage, QueueSpec,
    Receipt, Retry, Sent, Settled,
};

pub use queue::{Contents, Queue};

use super::validate::Refusal;

/// Most bytes of message bodies one lease returns (at least one message).
pub const LEASE_BYTES: usize = 4 * 1024 * 1024;
/// Longest body a command may carry in the log itself: what origins wrote
/// before large bodies became blobs (the routes now keep anything over
/// `INLINE_BODY` as a blob); entries already in logs stay valid.
pub const LOG_INLINE_MAX: usize = 1024 * 1024;

/// A change to one queue, as stored in the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCommand {
    pub queue: QueueName,
    /// The proposer's clock (milliseconds since the Unix epoch).
    pub now_ms: u64,
    pub action: QueueAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueAction {
    /// Creates the queue, or changes its spec (messages are kept).
    Declare {
        spec: QueueSpec,
    },
    Delete,
    Send {
        messages: Vec<NewMessage>,
    },
    Lease {
        max: usize,
        /// Instead of the queue's visibility timeout.
        visibility_ms: Option<u64>,
        /// Chosen by the consumer; a retry with the same id returns the
        /// same messages (see `queue::QueueData::leases`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    Ack {
        receipts: Vec<Receipt>,
    },
    Nack {
        retries: Vec<Retry>,
    },
    Pause {
        paused: bool,
    },
    /// Dead letters back into the queue as new messages; all without ids.
    Replay {
        ids: Option<Vec<u64>>,
    },
    PurgeDead,
}

/// What a queue command did, for the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueReply {
    Done { existed: bool },
    Sent { messages: Vec<Sent> },
    Leased { messages: Vec<Delivery> },
    Settled { settled: Settled },
    Moved { count: u64 },
}

impl QueueCommand {
    /// The checks that need no state (see [`super::validate`]).
    pub fn check(&self) -> Result<(), InvalidQueueInput> {
        match &self.action {
            QueueAction::Declare { spec } => spec.check(),
            QueueAction::Send { messages } => {
                if let Some(i) = messages.iter().position(|m| m.body.len() > LOG_INLINE_MAX) {
                    return Err(InvalidQueueInput::BodyTooLarge {
                        field: format!("messages[{i}].body (in the log; keep it as a blob)"),
                        len: messages[i].body.len(),
                    });
                }
                waypost_api::queues::SendRequest {
                    messages: messages.clone(),
                }
                .check()
            }
            QueueAction::Lease {
                max,
                visibility_ms,
                request_id,
            } => {
                if request_id
                    .as_ref()
                    .is_some_and(|r| r.is_empty() || r.len() > MAX_TAG)
                {
                    return Err(InvalidQueueInput::Tag {
                        field: "request_id".into(),
                    });
                }
                if !(1..=MAX_BATCH).contains(max) {
                    return Err(InvalidQueueInput::Batch {
                        field: "max",
                        len: *max,
                    });
                }
                match visibility_ms {
                    Some(v) if !(1_000..=MAX_VISIBILITY_S * 1000).contains(v) => {
                        Err(InvalidQueueInput::OutOfRange {
                            field: "visibility_timeout_s".into(),
                            value: v / 1000,
                            min: 1,
                            max: MAX_VISIBILITY_S,
                        })
                    }
                    _ => Ok(()),
                }
            }
            QueueAction::Ack { receipts } => waypost_api::queues::AckRequest {
                receipts: receipts.clone(),
            }
            .check(),
            QueueAction::Nack { retries } => waypost_api::queues::NackRequest {
                retries: retries.clone(),
            }
            .check(),
            QueueAction::Replay { ids: Some(ids) } if ids.len() > MAX_BATCH => {
                Err(InvalidQueueInput::Batch {
                    field: "ids",
                    len: ids.len(),
                })
            }
            QueueAction::Delete
            | QueueAction::Pause { .. }
            | QueueAction::Replay { .. }
            | QueueAction::PurgeDead => Ok(()),
        }
    }
}

/// Every queue, by name.
pub type Queues = BTreeMap<QueueName, Queue>;

/// Applies `command` to `queues`.
pub fn apply(queues: &mut Queues, command: QueueCommand) -> Result<QueueReply, Refusal> {
    let QueueCommand {
        queue: name,
        now_ms,
        action,
    } = command;
    if let QueueAction::Declare { spec } = action {
        return Ok(declare(queues, name, spec, now_ms));
    }
    if action == QueueAction::Delete {
        return Ok(QueueReply::Done {
            existed: queues.remove(&name).is_some(),
        });
    }
    let Some(queue) = queues.get_mut(&name) else {
        return Err(Refusal::NotFound {
            reason: format!("no queue `{name}`; declare it first (PUT /queues/{name})"),
        });
    };
    let now = queue.tick(now_ms);
    queue.expire(now);
    match action {
        QueueAction::Send { messages } => queue.send(messages, now),
        QueueAction::Lease {
            max,
            visibility_ms,
            request_id,
        } => Ok(queue.lease(max, visibility_ms, request_id, now)),
        QueueAction::Ack { receipts } => Ok(queue.ack(&receipts, now)),
        QueueAction::Nack { retries } => Ok(queue.nack(&retries, now)),
        QueueAction::Pause { paused } => {
            queue.pause(paused);
            Ok(QueueReply::Done { existed: true })
        }
        QueueAction::Replay { ids } => queue.replay(ids, now),
        QueueAction::PurgeDead => Ok(QueueReply::Moved {
            count: queue.purge_dead(),
        }),
        QueueAction::Declare { .. } | QueueAction::Delete => unreachable!("handled above"),
    }
}

fn declare(queues: &mut Queues, name: QueueName, spec: QueueSpec, now_ms: u64) -> QueueReply {
    if let Some(queue) = queues.get_mut(&name) {
        queue.set_spec(spec);
        return QueueReply::Done { existed: true };
    }
    queues.insert(name, Queue::new(spec, now_ms));
    QueueReply::Done { existed: false }
}

/// Milliseconds from seconds, saturating.
fn ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1000)
}

#[cfg(test)]
mod tests;
