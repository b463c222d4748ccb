//! Replication of the origin's metadata across regions with Raft
//! (openraft): every region holds the asset index, KV namespaces and the
//! event log; a write is acknowledged once a majority of regions has it on
//! disk, and any region forwards writes to the leader.
//!
//! - [`state`]: the replicated data and how commands change it,
//! - [`validate`] / [`conditions`]: what a command must satisfy there,
//! - [`log_store`] / [`state_machine`]: persistence openraft drives,
//! - [`network`]: the RPCs between regions, [`intake`]: those received,
//!   bounded before openraft sees them,
//! - [`bootstrap`]: founding the cluster versus waiting to be added,
//! - [`membership`]: adding and removing regions at runtime,
//! - [`Replica`]: what the HTTP handlers use (write, strong read, status).

mod blob_refs;
pub mod bootstrap;
pub mod conditions;
pub mod event_log;
mod feed_view;
pub mod identity;
pub mod intake;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod queues;
mod read_index;
pub mod state;
pub mod state_machine;
mod status;
pub mod validate;
pub mod wire;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, RaftMetrics};

use crate::config::RaftTiming;
use crate::peers::http::{ANSWER_MAX, PeerAuth, PeerHttp, json_answer};
use bootstrap::Probe;

pub use conditions::Conditions;
pub use event_log::Retention as FeedRetention;
pub use state::{Command, Event, EventKind, Outcome, State};
pub use state_machine::StateMachine;
pub use status::{ClusterStatus, PeerStatus};
pub use validate::Refusal;

openraft::declare_raft_types!(
    /// Waypost's Raft types: commands in, outcomes out, nodes by address.
    pub TypeConfig:
        D = Command,
        R = Outcome,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;

/// How long a write may wait for a leader and a majority before the client
/// gets 503.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a pristine node that no peer answered asks again.
const REPROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Most bytes of a forwarded write's answer read from the leader: a
/// lease's inline bodies (up to [`queues::LEASE_BYTES`] and one message
/// past it), which JSON may escape at six bytes per byte, and the rest.
const OUTCOME_MAX: usize = 6 * (queues::LEASE_BYTES + queues::LOG_INLINE_MAX) + ANSWER_MAX;

/// Why the replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Log(#[from] log_store::LogOpenError),
    #[error(transparent)]
    Snapshot(#[from] state_machine::SnapshotLoadError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("invalid Raft settings: {0}")]
    Config(#[from] openraft::ConfigError),
    #[error("Raft stopped while starting: {0}")]
    Fatal(#[from] openraft::error::Fatal<NodeId>),
    #[error("cannot form the cluster: {0}")]
    Initialize(#[from] RaftError<NodeId, InitializeError<NodeId, BasicNode>>),
}

/// Why a write or a strong read was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The leader took the write into its log but no majority confirmed
    /// it in time. The entry stays in the log and commits if a majority
    /// returns before another leader overwrites it, so the outcome is
    /// unknown, like a forwarded write whose leader went silent.
    #[error(
        "no majority of regions acknowledged the write within {0:?}; its outcome is unknown: \
         the leader holds it and it commits if a majority becomes reachable in time. Read it \
         back before retrying a write that must not apply twice"
    )]
    NoQuorum(Duration),
    #[error(
        "no majority of regions confirmed this origin's view within {0:?}, so a strong read \
         cannot be served; retry, or read without consistency=strong for this region's copy"
    )]
    NoReadQuorum(Duration),
    #[error("no leader was reachable within {0:?}; nothing was written")]
    NoLeader(Duration),
    #[error(
        "the leader at {leader} stopped answering mid-request; the write may or may not have committed"
    )]
    Unknown { leader: String },
    #[error("this origin's Raft node has stopped: {0}")]
    Stopped(String),
    /// The write was refused as invalid or for a failed precondition, by
    /// the state machine or before it was proposed; nothing changed.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// This region's Raft node plus the state it applies.
#[derive(Clone)]
pub struct Replica {
    pub raft: Raft,
    pub state: StateMachine,
    pub node_id: NodeId,
    http: PeerHttp,
    leader_changes: Arc<std::sync::atomic::AtomicU64>,
    snapshot_intake: Arc<tokio::sync::Mutex<intake::SnapshotIntake>>,
    read_rounds: Arc<read_index::ReadRounds>,
    /// Whether this node may vote while its log is empty: only once it has
    /// shown it never ran in this cluster (no cluster yet, or one that
    /// lists it without a registered incarnation). A node that could ask
    /// nobody may be a wiped member and must not ([`intake`]).
    blank_may_vote: Arc<std::sync::atomic::AtomicBool>,
}

impl Replica {
    /// Opens the log and snapshot in `dir` and starts the Raft node. A node
    /// with an empty log proposes `members` as the initial membership
    /// (every founding region does so with the same list, which openraft
    /// allows), unless a listed peer already belongs to a cluster: then it
    /// waits to be added ([`bootstrap`]).
    pub async fn start(
        dir: &Path,
        node_id: NodeId,
        members: BTreeMap<NodeId, String>,
        timing: RaftTiming,
        feed_retention: FeedRetention,
        auth: PeerAuth,
    ) -> Result<Self, ReplicaError> {
        let log = log_store::LogStore::open(dir)?;
        let state = StateMachine::open(dir, feed_retention)?;
        let config = openraft::Config {
            cluster_name: "waypost".into(),
            // The trade-off between failover time and the round trip
            // tolerated is the operator's (`[raft]`, see RaftTiming).
            heartbeat_interval: RaftTiming::millis(timing.heartbeat_interval),
            election_timeout_min: RaftTiming::millis(timing.election_timeout_min),
            election_timeout_max: RaftTiming::millis(timing.election_timeout_max),
            // Entry count per batch; bytes are capped in `network` (one
            // KV value is up to 1 MiB, so 300 entries, the default, could
            // be 300 MiB to read and clone before the byte cap cuts it).
            max_payload_entries: 64,
            // Each snapshot chunk (3 MiB) and the final install (the whole
            // state parsed and fsynced on the follower) must finish within
            // this; the default 200 ms cannot cross a WAN or install a large
            // state, so a region that fell behind the purged log would never
            // catch up. Only snapshot transfers wait on it.
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
        .validate()?;
        // Every request between regions carries the peer credential: peers'
        // `GET /cluster` (bootstrap and membership checks) is a private
        // read, and a probe refused for want of it would look like "no
        // cluster here" and let a new region found its own.
        let http = auth.client(
            reqwest::Client::builder()
                .pool_idle_timeout(crate::listen::CLIENT_POOL_IDLE)
                .connect_timeout(Duration::from_millis(500)),
        );
        let network = network::Network::new(http.clone());
        // A blank store under an id the cluster already registered is a
        // wiped member: it must not vote (see `identity`).
        let blank = log.is_blank() && state.applied_index() == 0;
        let mut probed = None;
        if blank {
            let probe = bootstrap::existing_cluster(&http, node_id, &members).await;
            if let Probe::Exists(e) = &probe
                && let Some(known) = e.known_incarnation
            {
                return Err(identity::IdentityError::WipedMember {
                    node_id,
                    known,
                    peer: e.peer.clone(),
                }
                .into());
            }
            probed = Some(probe);
        }
        let me = match identity::load(dir, node_id)? {
            Some(me) if !blank => me,
            _ => identity::create(dir, node_id)?,
        };
        let raft = Raft::new(node_id, Arc::new(config), network, log, state.clone()).await?;
        let alone = members.len() == 1;
        let blank_may_vote = Arc::new(std::sync::atomic::AtomicBool::new(true));
        if !raft.is_initialized().await? {
            let probe = match probed {
                Some(probe) => probe,
                None => bootstrap::existing_cluster(&http, node_id, &members).await,
            };
            match probe {
                Probe::Exists(existing) => joining(node_id, &existing),
                Probe::Fresh => initialize(&raft, members).await?,
                Probe::Unanswered => {
                    blank_may_vote.store(false, std::sync::atomic::Ordering::Release);
                    tracing::warn!(
                        node_id,
                        "no other listed region answers: not founding a cluster and not \
                         voting until one does (asking every second)"
                    );
                    tokio::spawn(found_once_answered(
                        raft.clone(),
                        http.clone(),
                        node_id,
                        members,
                        blank_may_vote.clone(),
                    ));
                }
            }
        }
        if alone {
            // A group of one elects itself within one election timeout; wait
            // for it so the server is writable as soon as it reports ready.
            let _ = raft
                .wait(Some(Duration::from_secs(5)))
                .current_leader(node_id, "single region")
                .await;
        }
        let leader_changes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(count_leader_changes(raft.metrics(), leader_changes.clone()));
        let replica = Self {
            raft,
            state,
            node_id,
            http,
            leader_changes,
            snapshot_intake: Arc::default(),
            read_rounds: Arc::default(),
            blank_may_vote,
        };
        tokio::spawn(replica.clone().register_incarnation(me.incarnation));
        Ok(replica)
    }

    /// Proposes `command` and waits until a majority holds it, forwarding
    /// to the leader when this node is not the leader. A command the state
    /// machine would refuse as invalid is refused before it is proposed;
    /// one it refused when applied (a failed precondition) is an error too.
    pub async fn write(&self, command: Command) -> Result<Outcome, WriteError> {
        command.check().map_err(|e| WriteError::Refused(e.into()))?;
        let outcome = self.write_checked(command).await?;
        match outcome.refused {
            Some(refusal) => Err(WriteError::Refused(refusal)),
            None => Ok(outcome),
        }
    }

    async fn write_checked(&self, command: Command) -> Result<Outcome, WriteError> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt =
                tokio::time::timeout(remaining, self.raft.client_write(command.clone())).await;
            let leader = match attempt {
                Err(_) => return Err(WriteError::NoQuorum(WRITE_TIMEOUT)),
                Ok(Ok(response)) => return Ok(response.data),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    f.leader_id.zip(f.leader_node)
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                    return Err(WriteError::Stopped(e.to_string()));
                }
                Ok(Err(RaftError::Fatal(e))) => return Err(WriteError::Stopped(e.to_string())),
            };
            match leader {
                Some((id, node)) => match self.forward(&node.addr, &command, remaining).await {
                    Forwarded::Done(outcome) => return Ok(*outcome),
                    Forwarded::Unknown => return Err(WriteError::Unknown { leader: node.addr }),
                    Forwarded::NotApplied => {
                        self.wait_leader_other_than(Some(id), deadline).await?
                    }
                },
                None => self.wait_leader_other_than(None, deadline).await?,
            }
        }
    }

    /// Proposes `command` on this node only; `None` if it is not the leader
    /// (the caller then finds the new leader). Used for forwarded writes;
    /// an invalid command is refused before it is proposed, and a refusal
    /// by the state machine travels back in [`Outcome::refused`].
    pub async fn write_here(&self, command: Command) -> Result<Option<Outcome>, WriteError> {
        if let Err(e) = command.check() {
            return Err(WriteError::Refused(e.into()));
        }
        match tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(command)).await {
            Err(_) => Err(WriteError::NoQuorum(WRITE_TIMEOUT)),
            Ok(Ok(response)) => Ok(Some(response.data)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Ok(None),
            Ok(Err(e)) => Err(WriteError::Stopped(e.to_string())),
        }
    }

    /// Waits until this node has applied everything committed before the
    /// call (a linearizable read), asking the leader for its commit index
    /// when this node is a follower.
    pub async fn sync_for_read(&self) -> Result<(), WriteError> {
        let index = match tokio::time::timeout(WRITE_TIMEOUT, self.read_index()).await {
            Ok(result) => result?,
            Err(_) => return Err(WriteError::NoReadQuorum(WRITE_TIMEOUT)),
        };
        self.raft
            .wait(Some(WRITE_TIMEOUT))
            .applied_index_at_least(Some(index), "strong read")
            .await
            .map_err(|_| WriteError::NoReadQuorum(WRITE_TIMEOUT))?;
        Ok(())
    }

    /// The current leader's advertised address.
    pub fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// The client this node uses to reach other regions.
    pub fn http(&self) -> &PeerHttp {
        &self.http
    }

    /// How many times this node has seen the leader change.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn forward(&self, addr: &str, command: &Command, remaining: Duration) -> Forwarded {
        let Ok(body) = wire::encode(command) else {
            return Forwarded::NotApplied;
        };
        let sent = self
            .http
            .post(addr, "/internal/raft/write")
            .timeout(remaining.max(Duration::from_millis(100)))
            .header(reqwest::header::CONTENT_TYPE, wire::CBOR)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Forwarded::NotApplied,
            Err(_) => return Forwarded::Unknown,
        };
        match response.status() {
            reqwest::StatusCode::OK => match json_answer::<Outcome>(response, OUTCOME_MAX).await {
                Ok(outcome) => Forwarded::Done(Box::new(outcome)),
                Err(_) => Forwarded::Unknown,
            },
            reqwest::StatusCode::MISDIRECTED_REQUEST => Forwarded::NotApplied,
            _ => Forwarded::Unknown,
        }
    }

    async fn forward_read_index(&self, addr: &str) -> Result<u64, WriteError> {
        let response = self
            .http
            .get(addr, "/internal/raft/read-index")
            .timeout(WRITE_TIMEOUT)
            .send()
            .await
            .map_err(|_| WriteError::NoLeader(WRITE_TIMEOUT))?;
        if !response.status().is_success() {
            return Err(WriteError::NoReadQuorum(WRITE_TIMEOUT));
        }
        json_answer::<u64>(response, ANSWER_MAX)
            .await
            .map_err(|_| WriteError::NoLeader(WRITE_TIMEOUT))
    }

    /// Waits until a leader other than `old` is known, or the deadline.
    async fn wait_leader_other_than(
        &self,
        old: Option<NodeId>,
        deadline: Instant,
    ) -> Result<(), WriteError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut metrics = self.raft.metrics();
        let changed = tokio::time::timeout(remaining, async {
            loop {
                let leader = metrics.borrow_and_update().current_leader;
                if leader.is_some() && leader != old {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        // The old leader may still be the leader (it refused for another
        // reason); give it a moment instead of spinning.
        if changed.is_err() {
            return Err(WriteError::NoLeader(WRITE_TIMEOUT));
        }
        if old.is_some() && self.raft.metrics().borrow().current_leader == old {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// Logs that this pristine node waits for a cluster that exists.
fn joining(node_id: NodeId, existing: &bootstrap::Existing) {
    if existing.includes_us {
        tracing::info!(
            node_id,
            peer = %existing.peer,
            "joining the cluster a peer founded with this region as a member"
        );
    } else {
        tracing::info!(
            node_id,
            peer = %existing.peer,
            "a cluster already exists; not founding one, waiting to be added \
             (POST /cluster/members on any member)"
        );
    }
}

/// A pristine node no peer answered: asks again every second until one
/// does, then founds the cluster (fresh deployment), leaves it to the
/// others (a cluster exists), or stops Raft here for good (the cluster
/// knows this id: a wiped member, which must not vote).
async fn found_once_answered(
    raft: Raft,
    http: PeerHttp,
    node_id: NodeId,
    members: BTreeMap<NodeId, String>,
    blank_may_vote: Arc<std::sync::atomic::AtomicBool>,
) {
    let may_vote = || blank_may_vote.store(true, std::sync::atomic::Ordering::Release);
    loop {
        tokio::time::sleep(REPROBE_INTERVAL).await;
        if raft.metrics().borrow().last_log_index.is_some() {
            return; // A leader has filled this node's log: it is a member.
        }
        match bootstrap::existing_cluster(&http, node_id, &members).await {
            Probe::Unanswered => continue,
            Probe::Fresh => {
                may_vote();
                if let Err(e) = initialize(&raft, members).await {
                    tracing::error!(node_id, error = %e, "founding the cluster failed");
                }
                return;
            }
            Probe::Exists(e) if e.known_incarnation.is_some() => {
                let error = identity::IdentityError::WipedMember {
                    node_id,
                    known: e.known_incarnation.unwrap_or_default(),
                    peer: e.peer.clone(),
                };
                tracing::error!(node_id, "{error}; Raft is stopped in this region");
                let _ = raft.shutdown().await;
                return;
            }
            Probe::Exists(e) => {
                may_vote();
                joining(node_id, &e);
                return;
            }
        }
    }
}

/// Proposes `members` as the first membership; `NotAllowed` means another
/// founding region's identical proposal got here first, which is fine.
async fn initialize(raft: &Raft, members: BTreeMap<NodeId, String>) -> Result<(), ReplicaError> {
    let members: BTreeMap<_, _> = members
        .into_iter()
        .map(|(id, addr)| (id, BasicNode { addr }))
        .collect();
    match raft.initialize(members).await {
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

enum Forwarded {
    Done(Box<Outcome>),
    /// The leader did not take the write (not reachable, or no longer
    /// leader): safe to retry elsewhere.
    NotApplied,
    /// The leader may have taken it; retrying could apply it twice.
    Unknown,
}

async fn count_leader_changes(
    mut metrics: tokio::sync::watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    count: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut last = metrics.borrow().current_leader;
    while metrics.changed().await.is_ok() {
        let leader = metrics.borrow().current_leader;
        if leader != last && leader.is_some() {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        last = leader;
    }
}
