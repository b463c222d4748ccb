//! A cached body, while it is written and after.
//!
//! One task copies the origin's body into a [`Fill`]; any number of readers
//! stream from it at their own pace, starting at any offset (Range), while it
//! is still arriving. Small bodies are kept in memory as the chunks the
//! origin sent (a hit is then a reference-count bump, no copy); bodies past
//! the memory limit live in a file, so a 50 MiB object costs readers a file
//! descriptor, not 50 MiB of RAM.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

/// How far a fill has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Writing(u64),
    Done(u64),
    /// The origin failed mid-body: readers abort and the object is dropped.
    Failed,
}

/// Why a reader stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("origin response body failed before it was complete")]
    Aborted,
    #[error("reading cached body from {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

struct Chunks {
    starts: Vec<u64>,
    data: Vec<Bytes>,
}

/// A body being stored or already stored.
pub struct Fill {
    memory: Mutex<Option<Chunks>>,
    file: Option<PathBuf>,
    progress: watch::Sender<Progress>,
}

impl Fill {
    /// An empty fill; `file` is where the body also goes when set.
    pub fn new(file: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            memory: Mutex::new(Some(Chunks {
                starts: Vec::new(),
                data: Vec::new(),
            })),
            file,
            progress: watch::Sender::new(Progress::Writing(0)),
        })
    }

    /// A complete body stored in `file`.
    pub fn on_disk(file: PathBuf, len: u64) -> Arc<Self> {
        Arc::new(Self {
            memory: Mutex::new(None),
            file: Some(file),
            progress: watch::Sender::new(Progress::Done(len)),
        })
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Bytes this fill holds in memory.
    pub fn memory_bytes(&self) -> u64 {
        match self.progress() {
            Progress::Writing(n) | Progress::Done(n) if self.in_memory() => n,
            _ => 0,
        }
    }

    pub fn in_memory(&self) -> bool {
        self.memory.lock().expect("fill lock").is_some()
    }

    /// The whole body as one buffer when it is complete, in memory and a
    /// single chunk: the hot path for small hits.
    pub fn single_chunk(&self) -> Option<Bytes> {
        if !matches!(self.progress(), Progress::Done(_)) {
            return None;
        }
        let mem = self.memory.lock().expect("fill lock");
        match mem.as_ref() {
            Some(c) if c.data.len() == 1 => Some(c.data[0].clone()),
            Some(c) if c.data.is_empty() => Some(Bytes::new()),
            _ => None,
        }
    }

    /// Streams bytes `[start, end)` (end = the body's end when `None`),
    /// waiting for them to arrive.
    pub fn reader(
        self: &Arc<Self>,
        start: u64,
        end: Option<u64>,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
        let state = ReaderState {
            fill: self.clone(),
            pos: start,
            end,
            rx: self.progress.subscribe(),
            file: None,
        };
        futures::stream::unfold(state, |mut s| async move {
            match s.next_chunk().await {
                Ok(Some(b)) => Some((Ok(b), s)),
                Ok(None) => None,
                Err(e) => {
                    s.end = Some(s.pos);
                    Some((Err(e), s))
                }
            }
        })
    }
}

/// The writing side; only the task copying the origin body holds it.
pub struct FillWriter {
    fill: Arc<Fill>,
    file: Option<tokio::fs::File>,
    written: u64,
    max_memory: u64,
    /// Largest body this fill stores (`max_object_size`, the disk tier's
    /// limit, or `max_memory` without a disk tier).
    max_total: u64,
    /// Set when the body passed `max_total`.
    outgrew_memory: bool,
    /// The disk space this fill's file holds ([`super::disk_reserve`]).
    reservation: Option<super::disk_reserve::Reservation>,
}

impl FillWriter {
    /// Opens the fill's file (if any) for writing; its bytes are reserved
    /// from `reservation` as they are written.
    pub async fn new(
        fill: Arc<Fill>,
        max_memory: u64,
        max_total: u64,
        reservation: Option<super::disk_reserve::Reservation>,
    ) -> std::io::Result<Self> {
        let file = match &fill.file {
            // Readable by this user only (cache directories are 0700 too).
            Some(path) => Some(
                tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .await?,
            ),
            None => None,
        };
        let max_total = if fill.file.is_some() {
            max_total
        } else {
            max_total.min(max_memory)
        };
        Ok(Self {
            fill,
            file,
            written: 0,
            max_memory,
            max_total,
            outgrew_memory: false,
            reservation,
        })
    }

    pub async fn push(&mut self, chunk: Bytes) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.written + chunk.len() as u64 > self.max_total {
            self.outgrew_memory = true;
            // Memory (or disk) would hold the whole body whatever its size:
            // stop. The cache passes this response through for a while.
            return Err(std::io::Error::other(format!(
                "the body outgrew the {} bytes this edge stores per object \
                 (max_object_size, or max_memory_object without a disk tier); the \
                 response is passed through uncached for {} s",
                self.max_total,
                super::TOO_LARGE_PASS.as_secs()
            )));
        }
        if let Some(f) = self.file.as_mut() {
            if let Some(r) = self.reservation.as_mut()
                && !r.grow_to(self.written + chunk.len() as u64)
            {
                return Err(std::io::Error::other(
                    "the disk tier's room for fills in progress (an eighth of disk.capacity) is \
                     taken; this response is passed through without being stored",
                ));
            }
            f.write_all(&chunk).await?;
        }
        let start = self.written;
        self.written += chunk.len() as u64;
        {
            let mut mem = self.fill.memory.lock().expect("fill lock");
            // With a file behind it, memory is only a copy: drop it once the
            // body outgrows the memory limit. Without a file it must stay.
            if self.fill.file.is_some() && self.written > self.max_memory {
                *mem = None;
            } else if let Some(c) = mem.as_mut() {
                c.starts.push(start);
                // A copy the size of the chunk: the chunk itself is often a
                // slice of the connection's read buffer (8 KiB and up), and
                // keeping it would keep that whole buffer for as long as the
                // object stays cached.
                c.data.push(Bytes::copy_from_slice(&chunk));
            }
        }
        let in_memory = self.fill.in_memory();
        if let Some(f) = self.file.as_mut()
            && !in_memory
        {
            // Readers will read these bytes back from the file.
            f.flush().await?;
        }
        self.fill
            .progress
            .send_replace(Progress::Writing(self.written));
        Ok(())
    }

    /// Marks the body complete; returns its length.
    pub async fn finish(mut self) -> std::io::Result<u64> {
        if let Some(f) = self.file.as_mut() {
            f.flush().await?;
        }
        self.compact();
        self.fill
            .progress
            .send_replace(Progress::Done(self.written));
        Ok(self.written)
    }

    /// Replaces the received chunks by one exact-size buffer. Chunks from the
    /// origin connection are views into hyper's read buffers, so a 1 KiB
    /// body could keep many KiB alive for as long as it is cached; one copy
    /// per stored object bounds memory by the body size and makes hits a
    /// single-buffer write.
    fn compact(&self) {
        let mut mem = self.fill.memory.lock().expect("fill lock");
        if let Some(c) = mem.as_mut() {
            let mut joined = bytes::BytesMut::with_capacity(self.written as usize);
            for chunk in &c.data {
                joined.extend_from_slice(chunk);
            }
            c.data = vec![joined.freeze()];
            c.starts = vec![0];
        }
    }

    /// Marks the body failed: readers abort, the file is removed.
    pub async fn fail(self) {
        self.fill.progress.send_replace(Progress::Failed);
        if let Some(path) = &self.fill.file {
            let _ = tokio::fs::remove_file(path).await;
        }
    }

    /// Whether the body outgrew memory with no file to spill to.
    pub fn outgrew_memory(&self) -> bool {
        self.outgrew_memory
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

struct ReaderState {
    fill: Arc<Fill>,
    pos: u64,
    end: Option<u64>,
    rx: watch::Receiver<Progress>,
    file: Option<tokio::fs::File>,
}

const FILE_CHUNK: u64 = 64 * 1024;

impl ReaderState {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            if self.end.is_some_and(|e| self.pos >= e) {
                return Ok(None);
            }
            let progress = *self.rx.borrow_and_update();
            let available = match progress {
                Progress::Failed => return Err(ReadError::Aborted),
                Progress::Writing(n) => n,
                Progress::Done(n) => {
                    if self.pos >= n {
                        return Ok(None);
                    }
                    n
                }
            };
            if self.pos < available {
                let limit = self.end.map_or(available, |e| e.min(available));
                if let Some(b) = self.read_memory(limit) {
                    self.pos += b.len() as u64;
                    return Ok(Some(b));
                }
                let b = self.read_file(limit).await?;
                self.pos += b.len() as u64;
                return Ok(Some(b));
            }
            if self.rx.changed().await.is_err() {
                return Err(ReadError::Aborted);
            }
        }
    }

    fn read_memory(&self, limit: u64) -> Option<Bytes> {
        let mem = self.fill.memory.lock().expect("fill lock");
        let c = mem.as_ref()?;
        let idx = match c.starts.binary_search(&self.pos) {
            Ok(i) => i,
            Err(i) => i.checked_sub(1)?,
        };
        let chunk = c.data.get(idx)?;
        let from = (self.pos - c.starts[idx]) as usize;
        let to = ((limit - c.starts[idx]) as usize).min(chunk.len());
        (from < to).then(|| chunk.slice(from..to))
    }

    async fn read_file(&mut self, limit: u64) -> Result<Bytes, ReadError> {
        let path = self.fill.file.clone().ok_or(ReadError::Aborted)?;
        let io = |source| ReadError::Io {
            path: path.clone(),
            source,
        };
        if self.file.is_none() {
            let mut f = tokio::fs::File::open(&path).await.map_err(io)?;
            f.seek(SeekFrom::Start(self.pos)).await.map_err(io)?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        let want = (limit - self.pos).min(FILE_CHUNK) as usize;
        let mut buf = vec![0u8; want];
        let n = f.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "cached body file is shorter than recorded",
            )));
        }
        buf.truncate(n);
        Ok(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn collect(
        s: impl Stream<Item = Result<Bytes, ReadError>>,
    ) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        futures::pin_mut!(s);
        while let Some(b) = s.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn reader_follows_a_growing_memory_fill() {
        let fill = Fill::new(None);
        let mut w = FillWriter::new(fill.clone(), 1 << 20, 1 << 20, None)
            .await
            .unwrap();
        let reader = tokio::spawn(collect(fill.reader(0, None)));
        let ranged = tokio::spawn(collect(fill.reader(3, Some(7))));
        for part in ["hel", "lo ", "wor", "ld"] {
            w.push(Bytes::from(part)).await.unwrap();
        }
        w.finish().await.unwrap();
        assert_eq!(reader.await.unwrap().unwrap(), b"hello world");
        assert_eq!(ranged.await.unwrap().unwrap(), b"lo w");
    }

    #[tokio::test]
    async fn large_fill_moves_to_file_and_failure_aborts_readers() {
        let dir = tempfile::tempdir().unwrap();
        let fill = Fill::new(Some(dir.path().join("x.body")));
        let mut w = FillWriter::new(fill.clone(), 4, 1 << 20, None)
            .await
            .unwrap();
        w.push(Bytes::from_static(b"0123")).await.unwrap();
        w.push(Bytes::from_static(b"4567")).await.unwrap();
        assert!(!fill.in_memory());
        assert_eq!(collect(fill.reader(2, Some(6))).await.unwrap(), b"2345");
        let pending = tokio::spawn(collect(fill.reader(0, None)));
        w.fail().await;
        assert!(matches!(pending.await.unwrap(), Err(ReadError::Aborted)));
    }
}
