//! Per-asset metadata documents at `meta/<name>.wpmeta`.
//!
//! Each document is small versioned JSON (`"format": 1`) that points at a
//! content-addressed blob. The version lets a later origin read documents an
//! older one wrote, and refuse ones from the future instead of misreading
//! them.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::asset_path::{AssetPath, META_SUFFIX};

/// The document format this origin writes and reads.
pub const FORMAT: u32 = 1;

/// What the origin knows about one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetMeta {
    pub format: u32,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    /// `Cache-Control` given at upload; `None` means "use the config rules".
    pub cache_control: Option<String>,
    #[serde(default)]
    pub surrogate_keys: Vec<String>,
    /// Unix seconds; HTTP dates have one-second resolution anyway.
    pub last_modified: u64,
}

/// Why a metadata document could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store: {0}")]
    Store(#[from] object_store::Error),
    #[error("metadata document {key} is corrupt: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata document {key} has format {found}; this origin reads format {FORMAT}")]
    UnknownFormat { key: String, found: u32 },
}

/// The metadata half of the store.
#[derive(Debug, Clone)]
pub struct MetaStore {
    store: Arc<dyn ObjectStore>,
}

impl MetaStore {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// The document for `path`, or `None` if the asset does not exist.
    pub async fn get(&self, path: &AssetPath) -> Result<Option<AssetMeta>, MetaError> {
        let key = path.meta_key();
        let bytes = match self.store.get(&key).await {
            Ok(result) => result.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let meta: AssetMeta =
            serde_json::from_slice(&bytes).map_err(|source| MetaError::Corrupt {
                key: key.to_string(),
                source,
            })?;
        if meta.format != FORMAT {
            return Err(MetaError::UnknownFormat {
                key: key.to_string(),
                found: meta.format,
            });
        }
        Ok(Some(meta))
    }

    /// Writes (or replaces) the document for `path`; the write is atomic.
    pub async fn put(&self, path: &AssetPath, meta: &AssetMeta) -> Result<(), MetaError> {
        let json = serde_json::to_vec(meta).expect("metadata always serialises");
        self.store
            .put(&path.meta_key(), PutPayload::from(Bytes::from(json)))
            .await?;
        Ok(())
    }

    /// Removes the document for `path`; `false` if there was none.
    pub async fn delete(&self, path: &AssetPath) -> Result<bool, MetaError> {
        let key = path.meta_key();
        // Backends disagree on deleting a missing key (the file system says
        // NotFound, S3 and memory say Ok), so existence is checked first.
        match self.store.head(&key).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Counts metadata documents by listing `meta/`; used at start-up to seed
    /// the asset gauge, after which writes keep it current.
    pub async fn count(&self) -> Result<u64, MetaError> {
        let prefix = StorePath::from("meta");
        let count = self
            .store
            .list(Some(&prefix))
            .try_fold(0u64, |n, object| async move {
                Ok(n + u64::from(object.location.as_ref().ends_with(META_SUFFIX)))
            })
            .await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn sample() -> AssetMeta {
        AssetMeta {
            format: FORMAT,
            sha256: "ab".repeat(32),
            size: 3,
            content_type: "text/plain".into(),
            cache_control: None,
            surrogate_keys: vec!["k1".into()],
            last_modified: 1_700_000_000,
        }
    }

    #[tokio::test]
    async fn round_trip_and_count() {
        let meta = MetaStore::new(Arc::new(InMemory::new()));
        let a = AssetPath::new("a/b.txt").unwrap();
        let b = AssetPath::new("a").unwrap();
        assert_eq!(meta.get(&a).await.unwrap(), None);
        meta.put(&a, &sample()).await.unwrap();
        meta.put(&b, &sample()).await.unwrap();
        assert_eq!(meta.get(&a).await.unwrap(), Some(sample()));
        assert_eq!(meta.count().await.unwrap(), 2);
        assert!(meta.delete(&a).await.unwrap());
        assert!(!meta.delete(&a).await.unwrap());
        assert_eq!(meta.count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn future_format_is_refused() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let meta = MetaStore::new(store.clone());
        let a = AssetPath::new("x").unwrap();
        let doc = serde_json::json!({"format": 2, "sha256": "", "size": 0, "content_type": "",
            "cache_control": null, "last_modified": 0});
        store
            .put(&a.meta_key(), PutPayload::from(doc.to_string()))
            .await
            .unwrap();
        assert!(matches!(
            meta.get(&a).await,
            Err(MetaError::UnknownFormat { found: 2, .. })
        ));
    }
}
