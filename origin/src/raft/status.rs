//! The cluster as `/cluster` and `/healthz` report it: this node's role,
//! the leader, members and how far each follower lags behind the leader.

pub use waypost_api::cluster::{ClusterStatus, PeerStatus};

use super::{NodeId, Replica};

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
