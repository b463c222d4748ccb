//! Asset storage: content-addressed blobs in this region's `object_store`;
//! the metadata that points at them is replicated by [`crate::raft`].

pub mod blobs;
pub mod meta;

use std::path::Path;
use std::sync::Arc;

use object_store::local::LocalFileSystem;

pub use blobs::{BlobWriteError, Blobs, StoredBlob};
pub use meta::AssetMeta;

/// This region's blob store.
#[derive(Debug, Clone)]
pub struct Store {
    pub blobs: Blobs,
}

impl Store {
    /// A store rooted at `data_dir` on the local file system, created if
    /// missing.
    pub fn local(data_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        // No automatic cleanup of empty directories: it would race with a
        // concurrent upload creating a file in the directory being removed.
        let fs = LocalFileSystem::new_with_prefix(data_dir).map_err(std::io::Error::other)?;
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(fs);
        Ok(Self {
            blobs: Blobs::new(store),
        })
    }
}
