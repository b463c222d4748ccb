//! Asset storage: content-addressed blobs in this region's `object_store`;
//! the metadata that points at them is replicated by [`crate::raft`].

pub mod blobs;
pub mod meta;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use crate::config::{S3Config, StorageConfig};

pub use blobs::{Area, BlobStream, BlobWriteError, Blobs, Listed, StoredBlob};
pub use meta::AssetMeta;

/// This region's blob store.
#[derive(Debug, Clone)]
pub struct Store {
    pub blobs: Blobs,
}

impl Store {
    /// The store `config` chooses: an S3 bucket, or `data_dir` on disk.
    pub fn open(config: &crate::Config) -> std::io::Result<Self> {
        match &config.storage {
            StorageConfig::Local => Self::local(&config.data_dir),
            StorageConfig::S3(s3) => Self::s3(s3),
        }
    }

    /// A store in an S3-compatible bucket. Nothing is sent until first use,
    /// so a wrong endpoint shows up as failing uploads, not at start-up.
    pub fn s3(config: &S3Config) -> std::io::Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key);
        if let Some(endpoint) = &config.endpoint {
            // Path-style requests: self-hosted stores rarely have wildcard
            // DNS for bucket subdomains.
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let s3 = builder.build().map_err(std::io::Error::other)?;
        let store: Arc<dyn object_store::ObjectStore> = match &config.prefix {
            Some(prefix) => Arc::new(PrefixStore::new(s3, prefix.as_str())),
            None => Arc::new(s3),
        };
        Ok(Self {
            blobs: Blobs::new(store),
        })
    }

    /// A store rooted at `data_dir` on the local file system, created if
    /// missing.
    pub fn local(data_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        // No automatic cleanup of empty directories: it would race with a
        // concurrent upload creating a file in the directory being removed.
        // fsync: a blob must be on disk before the metadata pointing at it
        // is committed, or a power loss leaves an acknowledged upload
        // pointing at bytes that were only in the page cache.
        let fs = LocalFileSystem::new_with_prefix(data_dir)
            .map_err(std::io::Error::other)?
            .with_fsync(true);
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(fs);
        Ok(Self {
            blobs: Blobs::new(store),
        })
    }
}
