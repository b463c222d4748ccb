//! The Raft state machine: applies committed commands to [`State`] and keeps
//! its snapshot on disk.
//!
//! The state lives in memory behind a lock that the HTTP handlers read
//! directly (reads never touch Raft). A snapshot is the whole state as
//! versioned JSON in `raft/snapshot.v1`, written atomically; at start-up it is
//! loaded and the log after it is re-applied by openraft.
//!
//! openraft 0.9 builds snapshots in a task of their own, so a build can run
//! while a snapshot from the leader is being installed. Both write the same
//! file, so writes go through one lock (`SnapshotFiles`), each through its
//! own temporary file, and a snapshot never replaces one on disk that covers
//! more of the log: a slow build finishing after an install must not put
//! the older state back under the newer log.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::event_log::Retention;
use super::state::{Command, Outcome, State};
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
    /// Counts applied queue commands, for long-polling leases.
    queue_changes: Arc<watch::Sender<u64>>,
    files: SnapshotFiles,
    /// How much of the change feed this replica keeps; applied again to
    /// every snapshot installed, since snapshots do not carry it.
    feed_retention: Retention,
}

/// The snapshot file in one directory, written by one writer at a time.
#[derive(Debug, Clone)]
struct SnapshotFiles {
    dir: PathBuf,
    /// The `last_log_id` of the snapshot on disk; holding the lock is what
    /// makes a writer the only one.
    on_disk: Arc<Mutex<Option<LogId<NodeId>>>>,
}

impl SnapshotFiles {
    /// Writes `file` unless the snapshot on disk covers more of the log.
    /// Blocking: call off the async threads.
    fn store(&self, file: &SnapshotFile) -> std::io::Result<()> {
        let mut on_disk = self.on_disk.lock().expect("snapshot file lock");
        if file.meta.last_log_id < *on_disk {
            tracing::debug!(
                snapshot = %file.meta.snapshot_id,
                "not storing a snapshot older than the one on disk"
            );
            return Ok(());
        }
        let path = self.dir.join(SNAPSHOT_FILE);
        let tmp = self.dir.join(format!(
            "{SNAPSHOT_FILE}.{:016x}.tmp",
            rand::random::<u64>()
        ));
        let written = (|| {
            let mut out = std::fs::File::create(&tmp)?;
            out.write_all(&serde_json::to_vec(file)?)?;
            out.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        *on_disk = file.meta.last_log_id;
        Ok(())
    }

    /// Removes temporary files a crash mid-write left behind.
    fn remove_stale_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(SNAPSHOT_FILE) && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

impl StateMachine {
    /// Loads the snapshot in `dir`, if any.
    pub fn open(dir: &Path, feed_retention: Retention) -> Result<Self, SnapshotLoadError> {
        let path = dir.join(SNAPSHOT_FILE);
        let (mut applied, on_disk): (Applied, _) = match read_snapshot(&path)? {
            Some(file) => (
                serde_json::from_str(&file.data)
                    .map_err(|source| SnapshotLoadError::Corrupt { path, source })?,
                file.meta.last_log_id,
            ),
            None => (Applied::default(), None),
        };
        applied.state.set_feed_retention(feed_retention);
        let (seq, _) = watch::channel(applied.state.last_seq);
        let files = SnapshotFiles {
            dir: dir.to_path_buf(),
            on_disk: Arc::new(Mutex::new(on_disk)),
        };
        files.remove_stale_temporaries();
        Ok(Self {
            applied: Arc::new(RwLock::new(applied)),
            seq: Arc::new(seq),
            queue_changes: Arc::new(watch::channel(0).0),
            files,
            feed_retention,
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

    /// Watches queue activity: changed whenever a queue command applies.
    pub fn subscribe_queues(&self) -> watch::Receiver<u64> {
        self.queue_changes.subscribe()
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

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // A copy under the lock, then the JSON and the file off the async
        // workers: serialising a large state under the lock would stop
        // every apply (and so every write) for as long as it takes.
        let applied = self.applied.read().expect("state lock").clone();
        let snapshot_id = applied.last_applied.map_or_else(
            || "empty".to_string(),
            |l| format!("{}-{}", l.leader_id, l.index),
        );
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id,
        };
        let files = self.files.clone();
        let file_meta = meta.clone();
        let built = tokio::task::spawn_blocking(move || {
            // Boxed: the error is large, the Ok path should not pay for it.
            let data = serde_json::to_string(&applied)
                .map_err(|e| Box::new(StorageIOError::read_state_machine(&e)))?;
            drop(applied);
            let file = SnapshotFile {
                format: SNAPSHOT_FORMAT,
                meta: file_meta,
                data,
            };
            // When a newer snapshot is already on disk this one is not
            // stored; returning it is still right: openraft keeps the
            // newer one it knows.
            files.store(&file).map_err(|e| {
                Box::new(StorageIOError::write_snapshot(
                    Some(file.meta.signature()),
                    &e,
                ))
            })?;
            Ok::<_, Box<StorageIOError<NodeId>>>(file)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?
        .map_err(|e| *e)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(built.data.into_bytes())),
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
        let mut queue_commands = 0;
        {
            let mut applied = self.applied.write().expect("state lock");
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                outcomes.push(match entry.payload {
                    EntryPayload::Blank => Outcome::default(),
                    EntryPayload::Normal(command) => {
                        queue_commands += u64::from(matches!(command, Command::Queue(_)));
                        applied.state.apply(command)
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        Outcome::default()
                    }
                });
            }
        }
        self.publish_seq();
        if queue_commands > 0 {
            self.queue_changes.send_modify(|n| *n += queue_commands);
        }
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
        let mut new: Applied = serde_json::from_str(&data).map_err(|e| bad(&e))?;
        new.state.set_feed_retention(self.feed_retention);
        let file = SnapshotFile {
            format: SNAPSHOT_FORMAT,
            meta: meta.clone(),
            data,
        };
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || files.store(&file))
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
        let path = self.files.dir.join(SNAPSHOT_FILE);
        let file = read_snapshot(&path).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(file.map(|f| Snapshot {
            meta: f.meta,
            snapshot: Box::new(Cursor::new(f.data.into_bytes())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::raft::Command;

    fn log_id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    async fn apply_kv(sm: &mut StateMachine, indexes: std::ops::RangeInclusive<u64>) {
        let entries = indexes.map(|index| Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(Command::KvPut {
                namespace: "ns".into(),
                key: format!("k{index}"),
                value: "v".into(),
                precondition: None,
            }),
        });
        sm.apply(entries.collect::<Vec<_>>()).await.unwrap();
    }

    /// A snapshot as a leader would send it, covering the log up to `index`.
    fn sent_snapshot(index: u64) -> (SnapshotMeta<NodeId, BasicNode>, Box<Cursor<Vec<u8>>>) {
        let applied = Applied {
            last_applied: Some(log_id(index)),
            ..Applied::default()
        };
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(index)),
            last_membership: StoredMembership::default(),
            snapshot_id: format!("sent-{index}"),
        };
        let data = serde_json::to_vec(&applied).unwrap();
        (meta, Box::new(Cursor::new(data)))
    }

    async fn on_disk(sm: &mut StateMachine) -> Option<LogId<NodeId>> {
        let current = sm.get_current_snapshot().await.unwrap();
        current.and_then(|s| s.meta.last_log_id)
    }

    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path(), Retention::DEFAULT).unwrap();
        apply_kv(&mut sm, 1..=3).await;
        let built = sm.build_snapshot().await.unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(3)));

        // Like a build that read the state before this one and wrote after.
        let (meta, data) = sent_snapshot(2);
        sm.install_snapshot(&meta, data).await.unwrap();
        assert_eq!(on_disk(&mut sm).await, Some(log_id(3)));

        let (meta, data) = sent_snapshot(7);
        sm.install_snapshot(&meta, data).await.unwrap();
        assert_eq!(on_disk(&mut sm).await, Some(log_id(7)));
        let reopened = StateMachine::open(dir.path(), Retention::DEFAULT).unwrap();
        assert_eq!(reopened.applied_index(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_builds_and_installs_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path(), Retention::DEFAULT).unwrap();
        apply_kv(&mut sm, 1..=5).await;
        let mut tasks = tokio::task::JoinSet::new();
        for index in 6..=25 {
            let mut builder = sm.clone();
            tasks.spawn(async move { builder.build_snapshot().await.map(|_| ()) });
            let mut installer = sm.clone();
            tasks.spawn(async move {
                let (meta, data) = sent_snapshot(index);
                installer.install_snapshot(&meta, data).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().expect("every snapshot write succeeds");
        }
        assert_eq!(on_disk(&mut sm).await, Some(log_id(25)));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
