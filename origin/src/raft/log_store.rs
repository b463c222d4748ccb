//! The Raft log, vote and commit index, persisted in one append-only file.
//!
//! `raft/log.v1` starts with a format header line, then one JSON record per
//! line: appended entries, truncations, purges, votes and commit indexes.
//! Replaying the records in order rebuilds the in-memory log at start-up.
//! Appends and votes are fsynced before openraft is told they are durable,
//! which is what makes an acknowledged write survive a crash. After a purge
//! (which follows a snapshot) the file is rewritten compactly.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};

/// The log file format this origin writes and reads.
pub const LOG_FORMAT: u32 = 1;
const LOG_FILE: &str = "log.v1";
const HEADER_KIND: &str = "waypost-raft-log";

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    kind: String,
    format: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Append(Entry<TypeConfig>),
    Truncate(u64),
    Purge(LogId<NodeId>),
    Vote(Vote<NodeId>),
    Committed(Option<LogId<NodeId>>),
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogOpenError {
    #[error("cannot read Raft log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Raft log {path} line {line} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("Raft log {path} has format {found}; this origin reads format {LOG_FORMAT}")]
    UnknownFormat { path: PathBuf, found: u32 },
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

impl Inner {
    fn replay(&mut self, record: Record) {
        match record {
            Record::Append(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            Record::Truncate(index) => {
                self.entries.split_off(&index);
            }
            Record::Purge(log_id) => {
                self.entries = self.entries.split_off(&(log_id.index + 1));
                self.last_purged = Some(log_id);
            }
            Record::Vote(vote) => self.vote = Some(vote),
            Record::Committed(c) => self.committed = c,
        }
    }
}

/// The log store; clones share the same log (openraft wants a separate
/// reader handle).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    file: Arc<Mutex<File>>,
    path: PathBuf,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, replaying what is there.
    pub fn open(dir: &Path) -> Result<Self, LogOpenError> {
        let path = dir.join(LOG_FILE);
        let io = |source| LogOpenError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut inner = Inner::default();
        match File::open(&path) {
            Ok(file) => {
                for (i, line) in BufReader::new(file).lines().enumerate() {
                    let line = line.map_err(io)?;
                    let corrupt = |source| LogOpenError::Corrupt {
                        path: path.clone(),
                        line: i + 1,
                        source,
                    };
                    if i == 0 {
                        let header: Header = serde_json::from_str(&line).map_err(corrupt)?;
                        if header.kind != HEADER_KIND || header.format != LOG_FORMAT {
                            return Err(LogOpenError::UnknownFormat {
                                path,
                                found: header.format,
                            });
                        }
                        continue;
                    }
                    // A crash mid-append leaves a torn last line; it was never
                    // fsynced, so it was never acknowledged: drop it.
                    match serde_json::from_str::<Record>(&line) {
                        Ok(record) => inner.replay(record),
                        Err(e) if e.is_eof() || e.is_syntax() => {
                            tracing::warn!(path = %path.display(), line = i + 1, "dropping a torn Raft log record");
                            break;
                        }
                        Err(e) => return Err(corrupt(e)),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        // Always start from a compact file: drops torn tails and old records.
        let file = rewrite(&path, &inner).map_err(io)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            file: Arc::new(Mutex::new(file)),
            path,
        })
    }

    /// Appends records and (if `sync`) fsyncs, off the async threads.
    async fn write(&self, records: Vec<Record>, sync: bool) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = file.lock().expect("log file lock");
            f.write_all(&buf)?;
            if sync {
                f.sync_data()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn compact(&self) -> std::io::Result<()> {
        let (path, inner, file) = (self.path.clone(), self.inner.clone(), self.file.clone());
        tokio::task::spawn_blocking(move || {
            let mut f = file.lock().expect("log file lock");
            let inner = inner.lock().expect("log lock");
            *f = rewrite(&path, &inner)?;
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("log lock")
    }
}

/// Writes `inner` as a fresh file next to `path`, fsyncs it and renames it
/// over `path`; returns the new file opened for appending.
fn rewrite(path: &Path, inner: &Inner) -> std::io::Result<File> {
    let tmp = path.with_extension("tmp");
    let mut out = std::io::BufWriter::new(File::create(&tmp)?);
    let header = Header {
        kind: HEADER_KIND.into(),
        format: LOG_FORMAT,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let mut line = |r: &Record| -> std::io::Result<()> {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")
    };
    if let Some(p) = inner.last_purged {
        line(&Record::Purge(p))?;
    }
    if let Some(v) = inner.vote {
        line(&Record::Vote(v))?;
    }
    for e in inner.entries.values() {
        line(&Record::Append(e.clone()))?;
    }
    line(&Record::Committed(inner.committed))?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

fn write_err(e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(vec![Record::Vote(*vote)], true)
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    /// Not fsynced: a lost commit index is only relearned from the leader.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.write(vec![Record::Committed(committed)], false)
            .await
            .map_err(write_err)?;
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let records = entries.iter().cloned().map(Record::Append).collect();
        let written = self.write(records, true).await;
        if written.is_ok() {
            let mut inner = self.lock();
            for e in entries {
                inner.entries.insert(e.log_id.index, e);
            }
        }
        let result = written
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::new(e.kind(), e.to_string()));
        callback.log_io_completed(result);
        written.map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(vec![Record::Truncate(log_id.index)], true)
            .await
            .map_err(write_err)?;
        self.lock().replay(Record::Truncate(log_id.index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.lock().replay(Record::Purge(log_id));
        self.compact().await.map_err(write_err)
    }
}
