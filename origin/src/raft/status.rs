//! The cluster as `/cluster` and `/healthz` report it: this node's role,
//! the leader, members and how far each follower lags behind the leader.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{NodeId, Replica};

/// A JSON view of the Raft group from this node's point of view.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub node_id: NodeId,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub leader_addr: Option<String>,
    pub last_log_index: u64,
    pub applied_index: u64,
    /// Entries in this node's log it has not applied yet (`/healthz`
    /// reports the lag behind the leader's commit index).
    pub lag: u64,
    pub members: Vec<PeerStatus>,
    /// Ids of the members that vote (and count towards a majority).
    pub voters: Vec<NodeId>,
    /// Ids of the members that receive the log without voting (a region
    /// being added, until it has caught up).
    pub learners: Vec<NodeId>,
    pub leader_changes: u64,
    /// Node id → its registered incarnation ([`super::identity`]); a
    /// starting node with a blank store checks its id is not here.
    pub incarnations: BTreeMap<NodeId, u64>,
}

/// One member as this node sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub addr: String,
    pub voter: bool,
    /// On the leader: entries this peer is behind the leader's log.
    pub replication_lag: Option<u64>,
}

impl Replica {
    /// The current status.
    pub fn status(&self) -> ClusterStatus {
        let m = self.raft.metrics().borrow().clone();
        let last_log_index = m.last_log_index.unwrap_or(0);
        let applied_index = m.last_applied.map_or(0, |l| l.index);
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let learners = membership.learner_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let replication_lag = m.replication.as_ref().map(|r| {
                    let matched = r.get(id).copied().flatten().map_or(0, |l| l.index);
                    last_log_index.saturating_sub(matched)
                });
                PeerStatus {
                    id: *id,
                    addr: node.addr.clone(),
                    voter: voters.contains(id),
                    replication_lag,
                }
            })
            .collect();
        ClusterStatus {
            node_id: self.node_id,
            role: format!("{:?}", m.state).to_lowercase(),
            term: m.current_term,
            leader: m.current_leader,
            leader_addr: self.leader_addr(),
            last_log_index,
            applied_index,
            lag: last_log_index.saturating_sub(applied_index),
            members,
            voters,
            learners,
            leader_changes: self.leader_changes(),
            incarnations: self.state.read(|s| s.incarnations.clone()),
        }
    }
}
