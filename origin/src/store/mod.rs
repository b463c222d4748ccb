//! Asset storage on `object_store`: content-addressed blobs plus one small
//! metadata document per asset name, split so each half can later be
//! replicated or fetched from a peer region on its own terms.

pub mod blobs;
pub mod meta;

use std::path::Path;
use std::sync::Arc;

use object_store::local::LocalFileSystem;

pub use blobs::{BlobWriteError, Blobs, StoredBlob};
pub use meta::{AssetMeta, MetaError, MetaStore};

/// Both halves of the store over one object store.
#[derive(Debug, Clone)]
pub struct Store {
    pub blobs: Blobs,
    pub meta: MetaStore,
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
            blobs: Blobs::new(store.clone()),
            meta: MetaStore::new(store),
        })
    }
}
