//! One read-index round for many readers.
//!
//! A linearizable read (`consistency=strong`, `/healthz`) needs the
//! commit index as of some moment after it arrived, confirmed by a
//! majority: on the leader a heartbeat round to every voter, on a follower
//! a request to the leader. Done once per request, a burst of reads or
//! health checks became a burst of heartbeats. Readers now share rounds:
//! at most one round asks at a time, and every reader that arrives while
//! it does joins the *next* round, which starts when the current one ends.
//! A reader never takes the answer of a round that began before it
//! arrived (that round's commit index could predate a write acknowledged
//! before the read), so reads stay linearizable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use openraft::error::RaftError;

use super::{Replica, WRITE_TIMEOUT, WriteError};

type Round = Shared<BoxFuture<'static, Result<u64, WriteError>>>;

/// The rounds of one node.
#[derive(Debug, Default)]
pub(super) struct ReadRounds {
    /// The round arriving readers join; it has not started asking yet.
    next: std::sync::Mutex<Option<Round>>,
    /// Held by the round that is asking.
    asking: tokio::sync::Mutex<()>,
    /// Rounds started, for tests and status.
    started: AtomicU64,
}

impl Replica {
    /// The commit index a linearizable read arriving now must wait for;
    /// shares a round with the readers arriving at the same time.
    pub async fn read_index(&self) -> Result<u64, WriteError> {
        let round = {
            let mut next = self.read_rounds.next.lock().expect("read round lock");
            match &*next {
                Some(round) => round.clone(),
                None => {
                    let replica = self.clone();
                    let round = async move { replica.run_round().await }.boxed().shared();
                    *next = Some(round.clone());
                    round
                }
            }
        };
        round.await
    }

    /// How many read-index rounds this node has started.
    pub fn read_index_rounds(&self) -> u64 {
        self.read_rounds.started.load(Ordering::Relaxed)
    }

    async fn run_round(self) -> Result<u64, WriteError> {
        let rounds = Arc::clone(&self.read_rounds);
        let _asking = rounds.asking.lock().await;
        // From now on arriving readers start the next round: this one may
        // have begun before they arrived.
        rounds.next.lock().expect("read round lock").take();
        rounds.started.fetch_add(1, Ordering::Relaxed);
        self.read_index_round().await
    }

    /// One read-index round: the commit index a linearizable read must
    /// wait for, asking the leader when this node is not it.
    async fn read_index_round(&self) -> Result<u64, WriteError> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        loop {
            match self.raft.ensure_linearizable().await {
                Ok(log_id) => return Ok(log_id.map_or(0, |l| l.index)),
                Err(RaftError::APIError(e)) => {
                    let leader = match &e {
                        openraft::error::CheckIsLeaderError::ForwardToLeader(f) => {
                            f.leader_node.clone()
                        }
                        openraft::error::CheckIsLeaderError::QuorumNotEnough(_) => {
                            return Err(WriteError::NoReadQuorum(WRITE_TIMEOUT));
                        }
                    };
                    match leader {
                        Some(node) => return self.forward_read_index(&node.addr).await,
                        None => self.wait_leader_other_than(None, deadline).await?,
                    }
                }
                Err(RaftError::Fatal(e)) => return Err(WriteError::Stopped(e.to_string())),
            }
        }
    }
}
