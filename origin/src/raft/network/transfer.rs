//! Large AppendEntries batches that take longer than one attempt.
//!
//! openraft 0.9 gives every AppendEntries attempt the heartbeat interval
//! (150 ms by default) and, when it runs out, sends the same entries again
//! from the start. A batch that cannot cross the link in that time (a
//! 1 MiB KV value over a slow or long link, where TCP alone needs several
//! round trips to open its window) would be resent forever, and nothing
//! written after it would commit. So a batch over [`DETACH_BYTES`] is sent
//! as a transfer of its own with a deadline derived from its size
//! ([`deadline`]); an attempt that times out leaves it running, and the
//! next attempt for the same entries waits for the same transfer instead
//! of starting over, and takes its answer once it arrives. Heartbeats and
//! small batches still go as plain RPCs beside it.
//!
//! A transfer answers for the entries it carried. openraft may retry with
//! more (entries appended since): its answer then says how far the peer
//! got (`PartialSuccess`), and openraft sends the rest next. Entries after
//! the same `prev_log_id` under the same leader's vote are the same
//! entries (Raft's log matching), so the key below names them.

use std::future::Future;
use std::time::Duration;

use openraft::raft::AppendEntriesRequest;
use openraft::{LogId, Vote};
use tokio::task::JoinHandle;

use crate::raft::{NodeId, TypeConfig};

/// Batches larger than this (encoded) go as transfers.
pub const DETACH_BYTES: usize = 64 * 1024;
/// The slowest link a transfer is given time for, in bytes per second.
pub const SLOWEST_RATE: u64 = 128 * 1024;
/// What a transfer gets besides its bytes' time (connecting, the peer's
/// fsync and apply).
const BASE_DEADLINE: Duration = Duration::from_secs(10);

/// How long a transfer of `bytes` may take before it is started again.
pub fn deadline(bytes: usize) -> Duration {
    BASE_DEADLINE + Duration::from_millis(bytes as u64 * 1000 / SLOWEST_RATE)
}

/// Which entries a transfer carries: those after `prev` sent by the
/// leader of `vote`, starting with `first`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    vote: Vote<NodeId>,
    prev: Option<LogId<NodeId>>,
    first: Option<LogId<NodeId>>,
}

impl Key {
    pub fn of(rpc: &AppendEntriesRequest<TypeConfig>) -> Self {
        Self {
            vote: rpc.vote,
            prev: rpc.prev_log_id,
            first: rpc.entries.first().map(|e| e.log_id),
        }
    }
}

/// One batch on its way; dropping it stops the send.
#[derive(Debug)]
pub struct Transfer<T> {
    key: Key,
    last: Option<LogId<NodeId>>,
    task: JoinHandle<T>,
}

impl<T: Send + 'static> Transfer<T> {
    /// Starts sending the batch `key`..`last` with `send`.
    pub fn start(
        key: Key,
        last: Option<LogId<NodeId>>,
        send: impl Future<Output = T> + Send + 'static,
    ) -> Self {
        Self {
            key,
            last,
            task: tokio::spawn(send),
        }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The last entry it carries.
    pub fn last(&self) -> Option<LogId<NodeId>> {
        self.last
    }

    /// Its answer (an error only if the send panicked). Cancel-safe:
    /// dropping the future leaves the transfer running, to be awaited
    /// again.
    pub async fn finish(&mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.task).await
    }
}

impl<T> Drop for Transfer<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_with_the_batch() {
        assert_eq!(deadline(0), BASE_DEADLINE);
        assert_eq!(
            deadline(1024 * 1024),
            BASE_DEADLINE + Duration::from_secs(8)
        );
    }

    #[tokio::test]
    async fn an_abandoned_wait_leaves_the_transfer_running() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let key = Key {
            vote: Vote::new_committed(1, 1),
            prev: None,
            first: None,
        };
        let mut t = Transfer::start(key, None, async move { rx.await.unwrap() });
        // An attempt gives up before the answer arrives...
        let gave_up = tokio::time::timeout(Duration::from_millis(10), t.finish()).await;
        assert!(gave_up.is_err());
        // ...and the next one gets it.
        tx.send(7).unwrap();
        assert_eq!(t.finish().await.unwrap(), 7);
    }
}
