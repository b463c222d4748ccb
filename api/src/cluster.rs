//! The origin cluster's reports (`/cluster`, `/healthz`) and requests
//! (`POST /cluster/members`), as the origin writes them and the CLI and the
//! other regions read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A region's Raft node id.
pub type NodeId = u64;

/// A JSON view of the Raft group from one node's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Node id → its registered incarnation; a starting node with a blank
    /// store checks its id is not here.
    pub incarnations: BTreeMap<NodeId, u64>,
}

impl ClusterStatus {
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }
}

/// One member as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub addr: String,
    pub voter: bool,
    /// On the leader: entries this peer is behind the leader's log.
    pub replication_lag: Option<u64>,
}

/// `/healthz`'s verdict on one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Serving current data (the only state answering 200).
    Ok,
    /// Applying entries the leader has committed.
    CatchingUp,
    NoLeader,
    Stopped,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Ok => "ok",
            HealthState::CatchingUp => "catching_up",
            HealthState::NoLeader => "no_leader",
            HealthState::Stopped => "stopped",
        }
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthState,
    pub node_id: NodeId,
    pub role: String,
    pub leader: Option<NodeId>,
    /// Committed entries this node has not applied yet (as of the leader's
    /// commit index); `null` when the leader could not be asked.
    pub lag: Option<u64>,
}

/// `GET /cluster/health`: one member as the region asked reached it over
/// the links between regions (which the CLI cannot use: with mutual TLS
/// they take only the cluster's certificates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberHealth {
    pub id: NodeId,
    pub addr: String,
    pub voter: bool,
    /// Its own `/healthz` answer; `None` when it did not answer.
    pub health: Option<Health>,
    /// Its applied index, from its own `/cluster`.
    pub applied_index: Option<u64>,
    /// Entries it is behind the leader's log, as the leader sees it.
    pub replication_lag: Option<u64>,
}

/// `POST /cluster/members`: the region to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub id: NodeId,
    /// `host:port` of its origin.
    pub addr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_states_are_snake_case() {
        for s in [
            HealthState::Ok,
            HealthState::CatchingUp,
            HealthState::NoLeader,
            HealthState::Stopped,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<HealthState>(&json).unwrap(), s);
        }
    }
}
