//! Adding and removing regions at runtime, on the leader.
//!
//! Adding a region is two Raft membership changes: first as a learner,
//! which receives the log but does not vote, and only once it has caught
//! up as a voter. Promoting a region that is far behind would make every
//! write wait for it (it counts towards the majority before it can
//! acknowledge anything). Before either step the new origin is asked who
//! it is, so a typo in `addr` or `id` is refused instead of adding a voter
//! nobody can reach.
//!
//! Removing refuses to take away the last voter, or to leave voters of
//! which fewer than a majority answer right now: that change could commit
//! (the old majority agrees) and then leave a group that cannot commit
//! anything.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use super::bootstrap::probe;
use super::{NodeId, Replica};

/// How long a new learner may take to catch up before the request gives
/// up (it stays a learner; repeating the request retries the promotion).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a region may take to answer the identity or liveness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a membership change was refused; each says whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("`{0}` is not a host:port other regions can reach, like 10.0.4.10:7070")]
    BadAddr(String),
    #[error("member ids start at 1")]
    ZeroId,
    #[error("member {id} already exists (at {addr}); remove it first to move it")]
    DuplicateId { id: NodeId, addr: String },
    #[error("{addr} is already the address of member {id}")]
    DuplicateAddr { addr: String, id: NodeId },
    #[error(
        "cannot reach an origin at {addr} ({reason}); start the new region first, with a \
         config listing the cluster's members and itself"
    )]
    Unreachable { addr: String, reason: String },
    #[error("the origin at {addr} is member {found}, not {id}; check its cluster.node_id")]
    WrongId {
        addr: String,
        id: NodeId,
        found: NodeId,
    },
    #[error("no member {id}; the members are {members:?}")]
    UnknownId { id: NodeId, members: Vec<NodeId> },
    #[error("member {0} is the last voter; removing it would leave nobody to commit writes")]
    LastVoter(NodeId),
    #[error(
        "removing member {id} would leave voters {remaining:?}, of which only {answering} \
         answer now; {needed} are needed to keep committing writes"
    )]
    NoMajorityLeft {
        id: NodeId,
        remaining: Vec<NodeId>,
        answering: usize,
        needed: usize,
    },
    #[error(
        "member {id} was added as a learner but did not catch up within {waited:?}; it stays a \
         learner (repeat the request to retry the promotion, or remove it)"
    )]
    NotCaughtUp { id: NodeId, waited: Duration },
    #[error("this origin is not the leader")]
    NotLeader,
    #[error("the membership change did not complete: {0}")]
    Raft(String),
}

impl Replica {
    /// Adds region `id` at `addr`: a learner until it has caught up, then
    /// a voter. Repeating it for a learner retries the promotion.
    pub async fn add_member(&self, id: NodeId, addr: String) -> Result<(), MembershipError> {
        check_addr(&addr)?;
        if id == 0 {
            return Err(MembershipError::ZeroId);
        }
        self.require_leader()?;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let is_voter = membership.voter_ids().any(|v| v == id);
        for (other, node) in membership.nodes() {
            if *other == id && (is_voter || node.addr != addr) {
                return Err(MembershipError::DuplicateId {
                    id,
                    addr: node.addr.clone(),
                });
            }
            if *other != id && node.addr == addr {
                return Err(MembershipError::DuplicateAddr { addr, id: *other });
            }
        }
        let remote = probe(&self.http, &addr, CHECK_TIMEOUT).await.map_err(|e| {
            MembershipError::Unreachable {
                addr: addr.clone(),
                reason: e.to_string(),
            }
        })?;
        if remote.node_id != id {
            return Err(MembershipError::WrongId {
                addr,
                id,
                found: remote.node_id,
            });
        }
        let added = self
            .raft
            .add_learner(id, BasicNode { addr }, false)
            .await
            .map_err(raft_error)?;
        self.wait_caught_up(id, added.log_id.index).await?;
        let voters = BTreeSet::from([id]);
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
            .map_err(raft_error)?;
        self.wait_membership(|m| m.voter_ids().any(|v| v == id))
            .await
    }

    /// Removes region `id`: a voter leaves the voters and the cluster, a
    /// learner just the cluster.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), MembershipError> {
        self.require_leader()?;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        if membership.get_node(&id).is_none() {
            return Err(MembershipError::UnknownId {
                id,
                members: membership.nodes().map(|(id, _)| *id).collect(),
            });
        }
        let remaining: Vec<NodeId> = membership.voter_ids().filter(|v| *v != id).collect();
        let change = if membership.voter_ids().any(|v| v == id) {
            if remaining.is_empty() {
                return Err(MembershipError::LastVoter(id));
            }
            let mut answering = 0;
            for voter in &remaining {
                let addr = membership.get_node(voter).map(|n| n.addr.as_str());
                if *voter == self.node_id
                    || probe(&self.http, addr.unwrap_or_default(), CHECK_TIMEOUT)
                        .await
                        .is_ok()
                {
                    answering += 1;
                }
            }
            let needed = remaining.len() / 2 + 1;
            if answering < needed {
                return Err(MembershipError::NoMajorityLeft {
                    id,
                    remaining,
                    answering,
                    needed,
                });
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(raft_error)?;
        self.wait_membership(|m| m.get_node(&id).is_none()).await
    }

    /// Waits until this node's metrics show the committed change, so the
    /// status returned to the caller already reflects it.
    async fn wait_membership(
        &self,
        done: impl Fn(&openraft::Membership<NodeId, BasicNode>) -> bool + Send + Sync,
    ) -> Result<(), MembershipError> {
        self.raft
            .wait(Some(CHECK_TIMEOUT))
            .metrics(
                |m| done(m.membership_config.membership()),
                "membership change",
            )
            .await
            .map(|_| ())
            .map_err(|e| MembershipError::Raft(e.to_string()))
    }

    fn require_leader(&self) -> Result<(), MembershipError> {
        let leader = self.raft.metrics().borrow().current_leader;
        if leader == Some(self.node_id) {
            Ok(())
        } else {
            Err(MembershipError::NotLeader)
        }
    }

    /// Waits until the leader has replicated up to `index` to learner `id`.
    async fn wait_caught_up(&self, id: NodeId, index: u64) -> Result<(), MembershipError> {
        let started = Instant::now();
        let mut metrics = self.raft.metrics();
        let caught_up = tokio::time::timeout(CATCH_UP_TIMEOUT, async {
            loop {
                let matched = metrics
                    .borrow_and_update()
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).copied().flatten());
                if matched.is_some_and(|m| m.index >= index) {
                    return Ok(());
                }
                if metrics.changed().await.is_err() {
                    return Err(MembershipError::Raft("the Raft node stopped".into()));
                }
            }
        })
        .await;
        caught_up.unwrap_or(Err(MembershipError::NotCaughtUp {
            id,
            waited: started.elapsed(),
        }))
    }
}

fn check_addr(addr: &str) -> Result<(), MembershipError> {
    let ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(['/', ' ', '@'])
            && port.parse::<u16>().is_ok_and(|p| p != 0)
    });
    if ok {
        Ok(())
    } else {
        Err(MembershipError::BadAddr(addr.to_string()))
    }
}

fn raft_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => MembershipError::NotLeader,
        e => MembershipError::Raft(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_addr;

    #[test]
    fn addresses_are_host_port() {
        for ok in ["10.0.4.10:7070", "origin-4.internal:7070", "[::1]:7070"] {
            assert!(check_addr(ok).is_ok(), "{ok}");
        }
        for bad in ["10.0.4.10", ":7070", "h:0", "h:99999", "http://h:80", "h:x"] {
            assert!(check_addr(bad).is_err(), "{bad}");
        }
    }
}
