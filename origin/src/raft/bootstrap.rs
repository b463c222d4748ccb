//! Whether a node with an empty log founds the cluster or waits to be
//! added to one that already exists.
//!
//! Every region's config lists the members it knows, itself included. On
//! first start of a new deployment all regions found the group with that
//! same list, which Raft allows (identical initial memberships agree). A
//! region added later also starts with a list including itself, but a
//! cluster already runs: if it founded its own group from its list it
//! would hold a membership the others never committed, and its elections
//! (higher terms, from a log the others reject) would only disrupt them.
//!
//! So before founding, a pristine node asks the other listed members for
//! `GET /cluster`. If any answers with a membership, a cluster exists: the
//! node does not initialize, stays an empty learner that never campaigns,
//! and waits for an operator's `POST /cluster/members` on the cluster to
//! add it (the leader then replicates the log to it). Only when no listed
//! peer knows of a cluster (a fresh deployment, or peers not up yet) does
//! it found one. The same rule keeps a member whose data directory was
//! wiped from re-founding: it waits for the leader to refill it.
//!
//! A pristine node whose id that cluster has already registered
//! ([`super::identity`]) is not new but wiped: it refuses to start.
//!
//! A pristine node founds only when *every* other listed member answers
//! without a cluster. While one does not answer, it cannot tell a fresh
//! deployment whose other regions are not up yet from a wiped member (or
//! two) whose cluster's log lives on the region that is down, so it founds
//! nothing and starts without a log: it refuses votes ([`super::intake`])
//! and asks again every second, then founds, joins, or (a wiped member
//! after all) stops its Raft node. So a new deployment forms once all its
//! regions are up; one started with a region missing for good should list
//! only the regions it has. A node a leader fills before it could ask
//! anyone checks its incarnation against the replicated registry and stops
//! if the cluster knows another ([`super::identity`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Deserialize;

use super::NodeId;
use crate::peers::http::{ANSWER_MAX, AnswerError, PeerHttp, json_answer};

/// How long a peer may take to answer `GET /cluster` during start-up.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What a region says about itself on `GET /cluster`.
#[derive(Debug, Deserialize)]
pub struct Remote {
    pub node_id: NodeId,
    pub members: Vec<RemoteMember>,
    /// Absent from origins older than the registry.
    #[serde(default)]
    pub incarnations: BTreeMap<NodeId, u64>,
}

/// One member in a remote region's view.
#[derive(Debug, Deserialize)]
pub struct RemoteMember {
    pub id: NodeId,
    pub voter: bool,
}

/// Asks the origin at `addr` for its view of the cluster.
pub async fn probe(http: &PeerHttp, addr: &str, timeout: Duration) -> Result<Remote, AnswerError> {
    let response = http
        .get(addr, "/cluster")
        .timeout(timeout)
        .send()
        .await?
        .error_for_status()?;
    json_answer(response, ANSWER_MAX).await
}

/// A listed peer that already belongs to a cluster.
#[derive(Debug)]
pub struct Existing {
    pub peer: String,
    /// Whether that cluster's membership already names this node (a peer
    /// founded it from the same config moments earlier, or this node's
    /// data directory was wiped): it will be brought up to date without an
    /// operator.
    pub includes_us: bool,
    /// The incarnation that cluster registered for this node's id: set
    /// when this id already ran there ([`super::identity`]).
    pub known_incarnation: Option<u64>,
}

/// What the other listed members said.
#[derive(Debug)]
pub enum Probe {
    /// One of them belongs to a cluster.
    Exists(Existing),
    /// Every other listed member answered, none with a cluster (or there
    /// is nobody to ask): a fresh deployment, which this node may found
    /// from its config.
    Fresh,
    /// Some listed member did not answer: it may hold the cluster's log.
    Unanswered,
}

/// Asks every other listed member whether it belongs to a cluster.
pub async fn existing_cluster(
    http: &PeerHttp,
    node_id: NodeId,
    members: &BTreeMap<NodeId, String>,
) -> Probe {
    let mut probes: FuturesUnordered<_> = members
        .iter()
        .filter(|(id, _)| **id != node_id)
        .map(|(_, addr)| async move {
            let remote = probe(http, addr, PROBE_TIMEOUT).await.ok()?;
            Some((!remote.members.is_empty()).then(|| Existing {
                peer: addr.clone(),
                includes_us: remote.members.iter().any(|m| m.id == node_id),
                known_incarnation: remote.incarnations.get(&node_id).copied(),
            }))
        })
        .collect();
    let asked = probes.len();
    let mut fresh = 0;
    while let Some(answer) = probes.next().await {
        match answer {
            Some(Some(existing)) => return Probe::Exists(existing),
            Some(None) => fresh += 1,
            None => {}
        }
    }
    if fresh == asked {
        Probe::Fresh
    } else {
        Probe::Unanswered
    }
}
