//! Raft RPCs from peers, bounded before openraft sees them.
//!
//! openraft trusts what its network hands it: a vote at term `u64::MAX`
//! is granted and saved, and the next election on this node computes
//! `term + 1` and panics; a snapshot chunk at offset 2^60 makes the
//! receiving buffer seek there and grow to it. A peer holding the token
//! could do either, so every RPC's terms and indexes are checked against
//! bounds no real cluster reaches (one election per millisecond for 8,900
//! years stays under [`MAX_TERM`]), entries must be the consecutive run an
//! AppendEntries carries, and a snapshot chunk may only start where the
//! chunks received for that snapshot end (or at 0, to restart).

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{LogId, Vote};

use super::{NodeId, Replica, TypeConfig};

/// Highest term accepted from a peer.
pub const MAX_TERM: u64 = 1 << 48;
/// Highest log index accepted from a peer.
pub const MAX_INDEX: u64 = 1 << 62;

/// Why an RPC from a peer was refused without reaching Raft (a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRpc {
    #[error("term {0} is beyond {MAX_TERM}")]
    Term(u64),
    #[error("log index {0} is beyond {MAX_INDEX}")]
    Index(u64),
    #[error("log id at term {found} is newer than the sender's vote at term {vote}")]
    TermAfterVote { found: u64, vote: u64 },
    #[error("entry {position} has index {found}, expected {expected} (entries are consecutive)")]
    NotConsecutive {
        position: usize,
        found: u64,
        expected: u64,
    },
    #[error("entry {position} has a lower term than the entry before it")]
    TermDecreases { position: usize },
    #[error(
        "snapshot chunk at offset {offset}, but only {received} bytes of snapshot {id:?} \
         arrived; a chunk continues the received bytes or restarts at 0"
    )]
    ChunkOffset {
        id: String,
        offset: u64,
        received: u64,
    },
    #[error(
        "this region has no Raft log yet (a new region waiting to be added, or one whose data \
         was lost) and votes for no one until a leader fills it"
    )]
    BlankVoter,
}

/// The snapshot being received: its id and how many bytes arrived.
#[derive(Debug, Default)]
pub struct SnapshotIntake {
    receiving: Option<(String, u64)>,
}

impl Replica {
    /// A RequestVote from a peer.
    pub async fn receive_vote(
        &self,
        rpc: VoteRequest<NodeId>,
    ) -> Result<Result<VoteResponse<NodeId>, RaftError<NodeId>>, BadRpc> {
        let term = check_vote(&rpc.vote)?;
        check_log_id(rpc.last_log_id.as_ref(), term)?;
        // A node without any log remembers neither what it acknowledged
        // nor whom it voted for: unless it has shown it never ran here, its
        // vote could elect a leader missing committed writes (see
        // `identity`, `bootstrap`).
        if self.raft.metrics().borrow().last_log_index.is_none()
            && !self
                .blank_may_vote
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(BadRpc::BlankVoter);
        }
        Ok(self.raft.vote(rpc).await)
    }

    /// An AppendEntries from a peer.
    pub async fn receive_append(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>, BadRpc> {
        check_append(&rpc)?;
        Ok(self.raft.append_entries(rpc).await)
    }

    /// One InstallSnapshot chunk from a peer. Chunks are taken one at a
    /// time, so the count of received bytes matches what openraft wrote.
    pub async fn receive_snapshot(
        &self,
        rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
        BadRpc,
    > {
        let term = check_vote(&rpc.vote)?;
        check_log_id(rpc.meta.last_log_id.as_ref(), term)?;
        let mut intake = self.snapshot_intake.lock().await;
        let id = rpc.meta.snapshot_id.clone();
        let received = match &intake.receiving {
            Some((current, received)) if *current == id => *received,
            _ => 0,
        };
        if rpc.offset > received {
            return Err(BadRpc::ChunkOffset {
                id,
                offset: rpc.offset,
                received,
            });
        }
        let end = rpc.offset + rpc.data.len() as u64;
        let done = rpc.done;
        let result = self.raft.install_snapshot(rpc).await;
        intake.receiving = match (&result, done) {
            (Ok(_), false) => Some((id, end.max(received))),
            // Installed, or refused: the next chunk must start over.
            _ => None,
        };
        Ok(result)
    }
}

fn check_vote(vote: &Vote<NodeId>) -> Result<u64, BadRpc> {
    let term = vote.leader_id.term;
    if term > MAX_TERM {
        return Err(BadRpc::Term(term));
    }
    Ok(term)
}

fn check_log_id(log_id: Option<&LogId<NodeId>>, vote_term: u64) -> Result<(), BadRpc> {
    let Some(log_id) = log_id else {
        return Ok(());
    };
    if log_id.index > MAX_INDEX {
        return Err(BadRpc::Index(log_id.index));
    }
    let term = log_id.leader_id.term;
    if term > vote_term {
        return Err(BadRpc::TermAfterVote {
            found: term,
            vote: vote_term,
        });
    }
    Ok(())
}

fn check_append(rpc: &AppendEntriesRequest<TypeConfig>) -> Result<(), BadRpc> {
    let term = check_vote(&rpc.vote)?;
    check_log_id(rpc.prev_log_id.as_ref(), term)?;
    check_log_id(rpc.leader_commit.as_ref(), term)?;
    let first = rpc.prev_log_id.map_or(0, |l| l.index + 1);
    let mut last_term = rpc.prev_log_id.map_or(0, |l| l.leader_id.term);
    for (position, entry) in rpc.entries.iter().enumerate() {
        let expected = first + position as u64;
        check_log_id(Some(&entry.log_id), term)?;
        if entry.log_id.index != expected {
            return Err(BadRpc::NotConsecutive {
                position,
                found: entry.log_id.index,
                expected,
            });
        }
        if entry.log_id.leader_id.term < last_term {
            return Err(BadRpc::TermDecreases { position });
        }
        last_term = entry.log_id.leader_id.term;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload};

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn append(prev: Option<LogId<NodeId>>, ids: &[(u64, u64)]) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(5, 1),
            prev_log_id: prev,
            leader_commit: None,
            entries: ids
                .iter()
                .map(|&(term, index)| Entry {
                    log_id: log_id(term, index),
                    payload: EntryPayload::Blank,
                })
                .collect(),
        }
    }

    #[test]
    fn terms_and_indexes_are_bounded() {
        assert_eq!(check_vote(&Vote::new(3, 1)), Ok(3));
        assert_eq!(
            check_vote(&Vote::new(u64::MAX, 1)),
            Err(BadRpc::Term(u64::MAX))
        );
        assert_eq!(
            check_log_id(Some(&log_id(1, u64::MAX)), 2),
            Err(BadRpc::Index(u64::MAX))
        );
        assert!(matches!(
            check_log_id(Some(&log_id(3, 1)), 2),
            Err(BadRpc::TermAfterVote { .. })
        ));
    }

    #[test]
    fn appended_entries_are_one_consecutive_run() {
        assert_eq!(
            check_append(&append(None, &[(1, 0), (1, 1), (2, 2)])),
            Ok(())
        );
        assert_eq!(check_append(&append(Some(log_id(1, 4)), &[(1, 5)])), Ok(()));
        assert!(matches!(
            check_append(&append(Some(log_id(1, 4)), &[(1, 7)])),
            Err(BadRpc::NotConsecutive { .. })
        ));
        assert!(matches!(
            check_append(&append(None, &[(2, 0), (1, 1)])),
            Err(BadRpc::TermDecreases { position: 1 })
        ));
        let mut overflow = append(Some(log_id(1, u64::MAX)), &[]);
        overflow.leader_commit = Some(log_id(1, 3));
        assert_eq!(check_append(&overflow), Err(BadRpc::Index(u64::MAX)));
    }
}
