//! The Raft state machine: applies committed commands to [`State`] and keeps
//! its snapshot on disk.
//!
//! The state lives in memory behind a lock that the HTTP handlers read
//! directly (reads never touch Raft). A snapshot is the whole state as
//! versioned JSON in `raft/snapshot.v1`, written atomically; at start-up it is
//! loaded and the log after it is re-applied by openraft.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::state::{Outcome, State};
use super::{NodeId, TypeConfig};
use openraft::BasicNode;

/// The snapshot format this origin writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;
const SNAPSHOT_FILE: &str = "snapshot.v1";

/// The state plus what openraft needs to know about it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, BasicNode>,
    pub state: State,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    format: u32,
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// [`Applied`] as JSON, exactly the bytes sent to peers.
    data: String,
}

/// Why the snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotLoadError {
    #[error("cannot read snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("snapshot {path} has format {found}; this origin reads format {SNAPSHOT_FORMAT}")]
    UnknownFormat { path: PathBuf, found: u32 },
}

/// The state machine handle; clones share the state.
#[derive(Debug, Clone)]
pub struct StateMachine {
    applied: Arc<RwLock<Applied>>,
    /// The newest event sequence number, for change-feed long polls.
    seq: Arc<watch::Sender<u64>>,
    dir: PathBuf,
}

impl StateMachine {
    /// Loads the snapshot in `dir`, if any.
    pub fn open(dir: &Path) -> Result<Self, SnapshotLoadError> {
        let path = dir.join(SNAPSHOT_FILE);
        let applied = match read_snapshot(&path)? {
            Some(file) => serde_json::from_str(&file.data)
                .map_err(|source| SnapshotLoadError::Corrupt { path, source })?,
            None => Applied::default(),
        };
        let (seq, _) = watch::channel(applied.state.last_seq);
        Ok(Self {
            applied: Arc::new(RwLock::new(applied)),
            seq: Arc::new(seq),
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `f` on the current state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.applied.read().expect("state lock").state)
    }

    /// The last applied log index (0 before anything was applied).
    pub fn applied_index(&self) -> u64 {
        let applied = self.applied.read().expect("state lock");
        applied.last_applied.map_or(0, |l| l.index)
    }

    /// Watches the newest event sequence number.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }

    fn publish_seq(&self) {
        let last = self.read(|s| s.last_seq);
        self.seq
            .send_if_modified(|seq| std::mem::replace(seq, last) != last);
    }
}

fn read_snapshot(path: &Path) -> Result<Option<SnapshotFile>, SnapshotLoadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SnapshotLoadError::Io {
                path: path.into(),
                source,
            });
        }
    };
    let file: SnapshotFile =
        serde_json::from_slice(&bytes).map_err(|source| SnapshotLoadError::Corrupt {
            path: path.into(),
            source,
        })?;
    if file.format != SNAPSHOT_FORMAT {
        return Err(SnapshotLoadError::UnknownFormat {
            path: path.into(),
            found: file.format,
        });
    }
    Ok(Some(file))
}

fn write_snapshot(dir: &Path, file: &SnapshotFile) -> std::io::Result<()> {
    let path = dir.join(SNAPSHOT_FILE);
    let tmp = path.with_extension("tmp");
    let mut out = std::fs::File::create(&tmp)?;
    out.write_all(&serde_json::to_vec(file)?)?;
    out.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (data, meta) = {
            let applied = self.applied.read().expect("state lock");
            let data = serde_json::to_string(&*applied)
                .map_err(|e| StorageIOError::read_state_machine(&e))?;
            let snapshot_id = applied.last_applied.map_or_else(
                || "empty".to_string(),
                |l| format!("{}-{}", l.leader_id, l.index),
            );
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id,
            };
            (data, meta)
        };
        let file = SnapshotFile {
            format: SNAPSHOT_FORMAT,
            meta: meta.clone(),
            data,
        };
        let dir = self.dir.clone();
        let file = tokio::task::spawn_blocking(move || write_snapshot(&dir, &file).map(|()| file))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(file.data.into_bytes())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let applied = self.applied.read().expect("state lock");
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut outcomes = Vec::new();
        {
            let mut applied = self.applied.write().expect("state lock");
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                outcomes.push(match entry.payload {
                    EntryPayload::Blank => Outcome::default(),
                    EntryPayload::Normal(command) => applied.state.apply(command),
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        Outcome::default()
                    }
                });
            }
        }
        self.publish_seq();
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bad = |e: &(dyn std::error::Error + 'static)| {
            StorageIOError::read_snapshot(Some(meta.signature()), openraft::AnyError::error(e))
        };
        let data = String::from_utf8(snapshot.into_inner()).map_err(|e| bad(&e))?;
        let new: Applied = serde_json::from_str(&data).map_err(|e| bad(&e))?;
        let file = SnapshotFile {
            format: SNAPSHOT_FORMAT,
            meta: meta.clone(),
            data,
        };
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_snapshot(&dir, &file))
            .await
            .map_err(|e| bad(&e))?
            .map_err(|e| bad(&e))?;
        *self.applied.write().expect("state lock") = new;
        self.publish_seq();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let file = read_snapshot(&path).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(file.map(|f| Snapshot {
            meta: f.meta,
            snapshot: Box::new(Cursor::new(f.data.into_bytes())),
        }))
    }
}
