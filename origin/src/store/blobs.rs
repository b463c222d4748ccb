//! Content-addressed blobs: `blobs/sha256/<hex>`.
//!
//! An upload streams into a temporary key while its SHA-256 is computed, and
//! is renamed to its content address once complete. Two uploads of the same
//! bytes therefore end at the same key, and the rename is harmless.
//!
//! Blobs are never garbage-collected yet: deleting or replacing an asset
//! drops only its metadata, so an unreferenced blob stays until a future GC
//! pass (which must also consider other regions' references). A damaged
//! copy is moved to `quarantine/` rather than deleted ([`Blobs::quarantine`]).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

/// Multipart chunk size: large enough for S3's 5 MiB minimum part size.
const CHUNK_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight per upload; bounds an upload's memory to a few chunks.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// A blob that was written: its content address and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub sha256: String,
    pub size: u64,
}

/// Why a blob could not be written; the variants say who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum BlobWriteError {
    /// The request body failed mid-stream (client hung up, bad framing).
    #[error("reading the upload body failed: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store refused the write.
    #[error("writing the blob failed: {0}")]
    Store(#[from] object_store::Error),
}

/// An open blob: the stored object's length (the whole object, whatever
/// range was asked for) and the requested bytes.
pub struct BlobStream {
    pub stored_size: u64,
    pub stream: BoxStream<'static, object_store::Result<Bytes>>,
}

/// What [`Blobs::list`] walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Content-addressed blobs (`blobs/sha256/`).
    Blobs,
    /// Uploads in progress or abandoned (`tmp/`).
    Uploads,
}

/// One object a listing found.
#[derive(Debug, Clone)]
pub struct Listed {
    key: StorePath,
    /// The content address, for [`Area::Blobs`].
    pub sha256: Option<String>,
    pub size: u64,
    pub last_modified: std::time::SystemTime,
}

impl Listed {
    pub fn key(&self) -> String {
        self.key.to_string()
    }
}

/// The blob half of the store.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

impl Blobs {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Streams `body` into the store, hashing as it goes; `on_chunk` sees the
    /// length of every chunk (for byte metrics). Never holds more than a few
    /// chunks in memory.
    pub async fn put_stream<S, E>(
        &self,
        mut body: S,
        mut on_chunk: impl FnMut(usize),
    ) -> Result<StoredBlob, BlobWriteError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tmp = StorePath::from_iter(["tmp", &format!("{:032x}", rand::random::<u128>())]);
        let upload = self.store.put_multipart(&tmp).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK_SIZE);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(BlobWriteError::Body(e.into()));
                }
            };
            on_chunk(chunk.len());
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if let Err(e) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.put(chunk);
        }
        writer.finish().await?;
        let sha256 = hex::encode(hasher.finalize());
        if let Err(e) = self.store.rename(&tmp, &blob_key(&sha256)).await {
            let _ = self.store.delete(&tmp).await;
            return Err(e.into());
        }
        Ok(StoredBlob { sha256, size })
    }

    /// Streams the bytes of blob `sha256` in `range` (the whole blob if
    /// `None`), with the stored object's size so a caller that knows the
    /// expected size can spot a truncated copy before sending anything.
    pub async fn get_stream(
        &self,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> Result<BlobStream, object_store::Error> {
        let options = GetOptions::default().with_range(range);
        let result = self.store.get_opts(&blob_key(sha256), options).await?;
        Ok(BlobStream {
            stored_size: result.meta.size,
            stream: result.into_stream(),
        })
    }

    /// The stored length of blob `sha256`.
    pub async fn stored_size(&self, sha256: &str) -> Result<u64, object_store::Error> {
        Ok(self.store.head(&blob_key(sha256)).await?.size)
    }

    /// Moves this region's copy of blob `sha256` aside, to
    /// `quarantine/sha256/<hex>/<random>`, so the next read fetches it from
    /// a peer. Moved, not deleted: with one bucket shared by every region
    /// the peers read this same object, and a damaged copy (often damaged
    /// only in its last bytes) is worth more to an operator than none.
    /// Returns the quarantine key, `None` when there was no copy.
    pub async fn quarantine(&self, sha256: &str) -> Result<Option<String>, object_store::Error> {
        let aside = quarantine_prefix(sha256).join(format!("{:016x}", rand::random::<u64>()));
        match self.store.rename(&blob_key(sha256), &aside).await {
            Ok(()) => Ok(Some(aside.to_string())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the quarantined copies of `sha256`, once a good copy is back
    /// at its address; returns how many there were.
    pub async fn clear_quarantine(&self, sha256: &str) -> Result<usize, object_store::Error> {
        let prefix = quarantine_prefix(sha256);
        let keys: Vec<StorePath> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for key in &keys {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(keys.len())
    }

    /// Every object under `area`, as a stream: a store of millions of
    /// blobs is never listed into memory at once.
    pub fn list(&self, area: Area) -> BoxStream<'static, object_store::Result<Listed>> {
        let prefix = match area {
            Area::Blobs => StorePath::from_iter(["blobs", "sha256"]),
            Area::Uploads => StorePath::from("tmp"),
        };
        let store = self.store.clone();
        futures::stream::once(async move { store.list(Some(&prefix)) })
            .flatten()
            .map_ok(|meta| Listed {
                sha256: meta.location.filename().map(str::to_string),
                size: meta.size,
                last_modified: meta.last_modified.into(),
                key: meta.location,
            })
            .boxed()
    }

    /// When `listed` was last written, asked again (an upload of the same
    /// bytes may have rewritten it since the listing); `None` if it is gone.
    pub async fn last_modified(
        &self,
        listed: &Listed,
    ) -> object_store::Result<Option<std::time::SystemTime>> {
        match self.store.head(&listed.key).await {
            Ok(meta) => Ok(Some(meta.last_modified.into())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a listed object (gone already is fine).
    pub async fn delete_listed(&self, listed: &Listed) -> object_store::Result<()> {
        match self.store.delete(&listed.key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The store key of blob `sha256`, for log lines.
    pub fn key(sha256: &str) -> String {
        blob_key(sha256).to_string()
    }
}

fn blob_key(sha256: &str) -> StorePath {
    StorePath::from_iter(["blobs", "sha256", sha256])
}

fn quarantine_prefix(sha256: &str) -> StorePath {
    StorePath::from_iter(["quarantine", "sha256", sha256])
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn same_bytes_same_address() {
        let blobs = Blobs::new(Arc::new(InMemory::new()));
        let body = || {
            futures::stream::iter([
                Ok::<_, std::io::Error>(Bytes::from_static(b"hello ")),
                Ok(Bytes::from_static(b"world")),
            ])
        };
        let a = blobs.put_stream(body(), |_| {}).await.unwrap();
        let b = blobs.put_stream(body(), |_| {}).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.size, 11);
        assert_eq!(a.sha256, hex::encode(Sha256::digest(b"hello world")));
        let part = blobs.get_stream(&a.sha256, Some(6..11)).await.unwrap();
        assert_eq!(part.stored_size, 11);
        let part: Vec<Bytes> = part.stream.try_collect().await.unwrap();
        assert_eq!(part.concat(), b"world");
    }

    #[tokio::test]
    async fn quarantine_moves_a_copy_aside_until_cleared() {
        let blobs = Blobs::new(Arc::new(InMemory::new()));
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]);
        let stored = blobs.put_stream(body, |_| {}).await.unwrap();
        let aside = blobs.quarantine(&stored.sha256).await.unwrap().unwrap();
        assert!(aside.starts_with("quarantine/sha256/"), "{aside}");
        assert!(matches!(
            blobs.get_stream(&stored.sha256, None).await,
            Err(object_store::Error::NotFound { .. })
        ));
        assert_eq!(blobs.quarantine(&stored.sha256).await.unwrap(), None);
        let kept = blobs.store.get(&StorePath::from(aside)).await.unwrap();
        assert_eq!(kept.bytes().await.unwrap(), "abc");
        assert_eq!(blobs.clear_quarantine(&stored.sha256).await.unwrap(), 1);
        assert_eq!(blobs.clear_quarantine(&stored.sha256).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn failed_body_is_a_body_error() {
        let blobs = Blobs::new(Arc::new(InMemory::new()));
        let body = futures::stream::iter([
            Ok(Bytes::from_static(b"x")),
            Err(std::io::Error::other("reset")),
        ]);
        let err = blobs.put_stream(body, |_| {}).await.unwrap_err();
        assert!(matches!(err, BlobWriteError::Body(_)), "{err}");
    }
}
