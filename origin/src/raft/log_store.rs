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
    /// Boxed: an entry is far larger than the other records (serialises
    /// the same).
    Append(Box<Entry<TypeConfig>>),
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
    #[error(
        "Raft log {path} line {line} is corrupt: {source}; it is not the torn tail of a crash, \
         so no record is dropped: restore the file from a backup, or move it aside and re-add \
         this region (POST /cluster/members) so it copies the log from the others"
    )]
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
                self.entries.insert(entry.log_id.index, *entry);
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
        let inner = match File::open(&path) {
            Ok(file) => replay_file(&path, BufReader::new(file))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Inner::default(),
            Err(e) => return Err(io(e)),
        };
        // Always start from a compact file: drops torn tails and old records.
        let file = rewrite(&path, &inner).map_err(io)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            file: Arc::new(Mutex::new(file)),
            path,
        })
    }

    /// Whether the log holds nothing at all: no entry, purge or vote (a new
    /// node, or one whose data directory was wiped).
    pub fn is_blank(&self) -> bool {
        let inner = self.lock();
        inner.entries.is_empty() && inner.last_purged.is_none() && inner.vote.is_none()
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

/// Replays the log file read by `reader` (its path is for errors).
///
/// Lines are read as bytes: a torn record may end inside a multi-byte
/// character, and that must not stop the origin from starting. A crash
/// mid-append can only damage the end of the file, so only the last line
/// may be unreadable (it was never fsynced, hence never acknowledged, and is
/// dropped); an unreadable line with records after it means the file was
/// damaged some other way, and dropping what follows could forget fsynced
/// votes and entries, so that is `Corrupt` and the operator decides.
fn replay_file(path: &Path, mut reader: impl BufRead) -> Result<Inner, LogOpenError> {
    let corrupt = |line: usize, source| LogOpenError::Corrupt {
        path: path.to_path_buf(),
        line,
        source,
    };
    let mut inner = Inner::default();
    let mut buf = Vec::new();
    let mut line = 0;
    // The last unreadable line, which is fine only if nothing follows it.
    let mut torn: Option<(usize, serde_json::Error)> = None;
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| LogOpenError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            break;
        }
        line += 1;
        if let Some((bad, source)) = torn.take() {
            return Err(corrupt(bad, source));
        }
        let Some(record) = buf.strip_suffix(b"\n") else {
            // No newline: the append that wrote this line never finished.
            tracing::warn!(path = %path.display(), line, "dropping a torn Raft log record");
            break;
        };
        if line == 1 {
            let header: Header = serde_json::from_slice(record).map_err(|e| corrupt(line, e))?;
            if header.kind != HEADER_KIND || header.format != LOG_FORMAT {
                return Err(LogOpenError::UnknownFormat {
                    path: path.to_path_buf(),
                    found: header.format,
                });
            }
            continue;
        }
        match serde_json::from_slice::<Record>(record) {
            Ok(record) => inner.replay(record),
            Err(e) if e.is_eof() || e.is_syntax() => torn = Some((line, e)),
            Err(e) => return Err(corrupt(line, e)),
        }
    }
    if let Some((line, _)) = torn {
        tracing::warn!(path = %path.display(), line, "dropping a torn Raft log record");
    }
    Ok(inner)
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
        line(&Record::Append(Box::new(e.clone())))?;
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
        let records = entries
            .iter()
            .map(|e| Record::Append(Box::new(e.clone())))
            .collect();
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

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::raft::Command;

    fn entry(index: u64, value: &str) -> Record {
        Record::Append(Box::new(Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::KvPut {
                namespace: "ns".into(),
                key: format!("k{index}"),
                value: value.into(),
                precondition: None,
            }),
        }))
    }

    fn line(record: &Record) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(record).unwrap();
        bytes.push(b'\n');
        bytes
    }

    /// A log file: the header, then `body` as given.
    fn write_log(dir: &Path, body: &[u8]) {
        let header = Header {
            kind: HEADER_KIND.into(),
            format: LOG_FORMAT,
        };
        let mut bytes = serde_json::to_vec(&header).unwrap();
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        std::fs::write(dir.join(LOG_FILE), bytes).unwrap();
    }

    #[test]
    fn a_torn_last_record_split_inside_a_character_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new(3, 1);
        let mut body = line(&Record::Vote(vote));
        body.extend(line(&entry(1, "grüße")));
        let torn = line(&entry(2, "ääää"));
        let cut = torn.iter().position(|&b| b == 0xC3).unwrap() + 1;
        body.extend_from_slice(&torn[..cut]);
        write_log(dir.path(), &body);

        let store = LogStore::open(dir.path()).expect("a torn tail is not fatal");
        let inner = store.lock();
        assert_eq!(inner.vote, Some(vote));
        assert_eq!(inner.entries.keys().copied().collect::<Vec<_>>(), [1]);
        drop(inner);
        drop(store);
        // The rewrite dropped the torn bytes; the file opens cleanly again.
        let again = LogStore::open(dir.path()).unwrap();
        assert_eq!(again.lock().entries.len(), 1);
    }

    #[test]
    fn an_unreadable_last_line_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = line(&entry(1, "a"));
        body.extend_from_slice(b"{\"append\":{\"log_id\"\n");
        write_log(dir.path(), &body);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.lock().entries.len(), 1);
    }

    #[test]
    fn an_unreadable_line_with_records_after_it_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = line(&entry(1, "a"));
        body.extend_from_slice(b"{\"append\":{\"log_id\"\n");
        body.extend(line(&Record::Vote(Vote::new(4, 2))));
        write_log(dir.path(), &body);
        match LogStore::open(dir.path()) {
            Err(LogOpenError::Corrupt { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected Corrupt at line 3, got {other:?}"),
        }
    }
}
