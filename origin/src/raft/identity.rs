//! Who this node is across restarts: a node id and the incarnation it got
//! the first time it started with a blank store, in `raft/identity.v1`.
//!
//! Raft's safety rests on a voter remembering its log and its vote. A
//! region whose data directory was wiped and that comes back under its old
//! id remembers neither: it would grant votes (possibly twice in one term)
//! to a candidate missing writes it had acknowledged, and a leader could
//! be elected without them. So every node registers its incarnation in the
//! replicated state ([`super::Command::RegisterIncarnation`]) once it can
//! write, and a node that starts with a blank store refuses to start when
//! the cluster already knows an incarnation for its id: it is a wiped
//! member, not a new one. It rejoins as etcd members do, under a fresh
//! identity: remove the old id (`DELETE /cluster/members/<id>`, or
//! `waypost region remove`), then start and add it with a new id.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Command, NodeId, Replica, WriteError};

/// Pause between attempts to register while no leader takes the write
/// (a region waiting to be added has none).
const REGISTER_RETRY: Duration = Duration::from_secs(1);

const FILE: &str = "identity.v1";
const FORMAT: u32 = 1;

/// This node's persisted identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    format: u32,
    pub node_id: NodeId,
    /// Random, non-zero; new for every blank start.
    pub incarnation: u64,
}

/// Why the identity could not be read or written, or forbids starting.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a node identity: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} belongs to node {found}, but the config says this is node {configured}: \
         this data directory is another region's"
    )]
    OtherNode {
        path: PathBuf,
        found: NodeId,
        configured: NodeId,
    },
    #[error(
        "this region's Raft store is empty, but the cluster (asked at {peer}) already knows \
         node {node_id} (incarnation {known:016x}): its data directory was lost or wiped, and \
         voting with an empty log under that id could elect a leader without acknowledged \
         writes. Rejoin under a fresh identity: remove node {node_id} from the cluster \
         (DELETE /cluster/members/{node_id}), then start this region with a new \
         cluster.node_id and add it (POST /cluster/members)"
    )]
    WipedMember {
        node_id: NodeId,
        known: u64,
        peer: String,
    },
}

/// The identity stored in `dir`, if any.
pub fn load(dir: &Path, node_id: NodeId) -> Result<Option<Identity>, IdentityError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdentityError::Io { path, source }),
    };
    let identity: Identity =
        serde_json::from_slice(&bytes).map_err(|source| IdentityError::Corrupt {
            path: path.clone(),
            source,
        })?;
    if identity.node_id != node_id {
        return Err(IdentityError::OtherNode {
            path,
            found: identity.node_id,
            configured: node_id,
        });
    }
    Ok(Some(identity))
}

/// A new identity for `node_id`, written (atomically, fsynced) to `dir`.
pub fn create(dir: &Path, node_id: NodeId) -> Result<Identity, IdentityError> {
    let identity = Identity {
        format: FORMAT,
        node_id,
        incarnation: rand::random::<u64>().max(1),
    };
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    let bytes = serde_json::to_vec(&identity).map_err(|e| io(std::io::Error::other(e)))?;
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(identity)
}

impl Replica {
    /// Registers this node's incarnation in the replicated state, retrying
    /// until a leader takes it or the node stops. The first registration
    /// of an id stays, so a node never replaces another's.
    pub(super) async fn register_incarnation(self, incarnation: u64) {
        let command = Command::RegisterIncarnation {
            node_id: self.node_id,
            incarnation,
        };
        loop {
            match self
                .state
                .read(|s| s.incarnations.get(&self.node_id).copied())
            {
                Some(known) if known == incarnation => return,
                Some(known) => {
                    // This store was blank yet a leader filled it before
                    // any peer could tell it is a wiped member: the
                    // cluster knows another incarnation under this id.
                    let error = IdentityError::WipedMember {
                        node_id: self.node_id,
                        known,
                        peer: "this region's replicated state".into(),
                    };
                    tracing::error!("{error}; Raft is stopped in this region");
                    let _ = self.raft.shutdown().await;
                    return;
                }
                None => {}
            }
            match self.write(command.clone()).await {
                Ok(_) | Err(WriteError::Stopped(_)) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "incarnation not registered yet; retrying");
                    tokio::time::sleep(REGISTER_RETRY).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_and_bound_to_its_node() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), 2).unwrap().is_none());
        let made = create(dir.path(), 2).unwrap();
        assert_ne!(made.incarnation, 0);
        assert_eq!(load(dir.path(), 2).unwrap(), Some(made));
        assert!(matches!(
            load(dir.path(), 3),
            Err(IdentityError::OtherNode { found: 2, .. })
        ));
    }
}
