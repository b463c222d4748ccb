//! Where backups live: a directory or an S3-compatible bucket
//! (`s3://bucket/prefix`), both through `object_store`, so the layout, the
//! incremental check and verification are one code path whatever the
//! destination.
//!
//! Layout under the root: `blobs/ab/<sha256>` (content-addressed, shared by
//! every backup there) and `backups/<name>/{state.json,manifest.json}`.
//! The manifest is written last: a backup without one is incomplete and
//! not listed.

use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use waypost_api::backup::Manifest;

/// A blob's address as the state names it: 64 lowercase hex digits. Checked
/// before it becomes a path, so a state dump cannot point outside `blobs/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlobId(String);

impl BlobId {
    pub fn parse(sha256: &str) -> anyhow::Result<Self> {
        if sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(sha256.to_string()))
        } else {
            bail!("{sha256:?} is not a SHA-256 blob address (64 lowercase hex digits)")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a re-hash of a stored blob found.
pub enum BlobCheck {
    Missing,
    Corrupt { size: u64, sha256: String },
    Intact,
}

/// A backup destination.
pub struct BackupStore {
    store: Arc<dyn ObjectStore>,
    /// The location as the operator wrote it, for messages.
    shown: String,
}

impl BackupStore {
    /// `location` is a directory (created if missing) or
    /// `s3://bucket[/prefix]`; an S3 bucket takes its endpoint, region and
    /// credentials from the usual `AWS_*` variables (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`).
    pub fn open(location: &str) -> anyhow::Result<Self> {
        let store: Arc<dyn ObjectStore> = match location.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    bail!("{location}: expected s3://BUCKET or s3://BUCKET/PREFIX");
                }
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok();
                if let Some(endpoint) = endpoint {
                    // Self-hosted stores (Garage, MinIO, s3s) rarely have
                    // wildcard DNS for bucket subdomains: path-style.
                    builder = builder
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                let s3 = builder.build().with_context(|| {
                    format!("{location}: cannot use this S3 bucket (check the AWS_* variables)")
                })?;
                let prefix = prefix.trim_matches('/');
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix))
                }
            }
            None => {
                std::fs::create_dir_all(location)
                    .with_context(|| format!("cannot create the backup directory {location}"))?;
                // fsync: a manifest must not reach the disk before the
                // blobs and state it vouches for.
                let fs = LocalFileSystem::new_with_prefix(location)
                    .with_context(|| format!("cannot use {location} as a backup directory"))?
                    .with_fsync(true);
                Arc::new(fs)
            }
        };
        Ok(Self {
            store,
            shown: location.to_string(),
        })
    }

    fn blob_path(id: &BlobId) -> Path {
        Path::from_iter(["blobs", &id.as_str()[..2], id.as_str()])
    }

    fn backup_path(name: &str, file: &str) -> Path {
        Path::from_iter(["backups", name, file])
    }

    /// Whether the blob is already here at its size (a second backup skips
    /// it).
    pub async fn has_blob(&self, id: &BlobId, size: u64) -> anyhow::Result<bool> {
        match self.store.head(&Self::blob_path(id)).await {
            Ok(meta) => Ok(meta.size == size),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("checking blob {} in {}", id.as_str(), self.shown))
            }
        }
    }

    /// Streams `body` into the blob `id`, hashing as it goes; a body whose
    /// hash or size is not the expected one is discarded and refused.
    pub async fn put_blob(
        &self,
        id: &BlobId,
        size: u64,
        mut body: impl futures::Stream<Item = anyhow::Result<Bytes>> + Unpin,
    ) -> anyhow::Result<()> {
        let mut writer = BufWriter::new(self.store.clone(), Self::blob_path(id));
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let outcome = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                got += chunk.len() as u64;
                writer.write_all(&chunk).await?;
            }
            anyhow::Ok(())
        }
        .await;
        let sha256 = hex::encode(hasher.finalize());
        if let Err(e) = outcome {
            let _ = writer.abort().await;
            return Err(e.context(format!("copying blob {}", id.as_str())));
        }
        if sha256 != id.as_str() || got != size {
            let _ = writer.abort().await;
            bail!(
                "blob {} arrived as {got} bytes hashing to {sha256}; nothing kept",
                id.as_str()
            );
        }
        writer
            .shutdown()
            .await
            .with_context(|| format!("writing blob {} to {}", id.as_str(), self.shown))
    }

    /// The blob's bytes as a stream (restores send it on without holding
    /// it whole).
    pub async fn blob_stream(
        &self,
        id: &BlobId,
    ) -> anyhow::Result<futures::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        let got = self
            .store
            .get(&Self::blob_path(id))
            .await
            .with_context(|| format!("reading blob {} from {}", id.as_str(), self.shown))?;
        Ok(got.into_stream())
    }

    /// The blob's bytes, whole (for queue message bodies, at most
    /// `MAX_BODY`).
    pub async fn blob_bytes(&self, id: &BlobId) -> anyhow::Result<Bytes> {
        let got = self
            .store
            .get(&Self::blob_path(id))
            .await
            .with_context(|| format!("reading blob {} from {}", id.as_str(), self.shown))?;
        Ok(got.bytes().await?)
    }

    /// Re-hashes the stored blob.
    pub async fn check_blob(&self, id: &BlobId, size: u64) -> anyhow::Result<BlobCheck> {
        let mut stream = match self.store.get(&Self::blob_path(id)).await {
            Ok(got) => got.into_stream(),
            Err(object_store::Error::NotFound { .. }) => return Ok(BlobCheck::Missing),
            Err(e) => return Err(e).with_context(|| format!("reading blob {}", id.as_str())),
        };
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading blob {}", id.as_str()))?;
            len += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let sha256 = hex::encode(hasher.finalize());
        Ok(if sha256 == id.as_str() && len == size {
            BlobCheck::Intact
        } else {
            BlobCheck::Corrupt { size: len, sha256 }
        })
    }

    /// Writes one file of backup `name` (whole: state and manifest are
    /// small next to the blobs).
    pub async fn put_file(&self, name: &str, file: &str, bytes: Bytes) -> anyhow::Result<()> {
        self.store
            .put(&Self::backup_path(name, file), bytes.into())
            .await
            .with_context(|| format!("writing {file} of backup {name} to {}", self.shown))?;
        Ok(())
    }

    /// One file of backup `name`, `None` when it is not there.
    pub async fn file(&self, name: &str, file: &str) -> anyhow::Result<Option<Bytes>> {
        match self.store.get(&Self::backup_path(name, file)).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {file} of backup {name}")),
        }
    }

    /// The complete backups here (those with a manifest), oldest first.
    pub async fn backups(&self) -> anyhow::Result<Vec<(String, Manifest)>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&Path::from("backups")))
            .await
            .with_context(|| format!("listing the backups in {}", self.shown))?;
        let mut out = Vec::new();
        for dir in listed.common_prefixes {
            let Some(name) = dir.filename().map(str::to_string) else {
                continue;
            };
            let Some(bytes) = self.file(&name, "manifest.json").await? else {
                continue;
            };
            let m: Manifest = serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{}: backups/{name}/manifest.json is not a manifest",
                    self.shown
                )
            })?;
            out.push((name, m));
        }
        out.sort_by_key(|(_, m)| (m.created_at_ms, m.raft_index));
        Ok(out)
    }

    /// Where a blob is, as an operator would look for it.
    pub fn describe_blob(&self, id: &BlobId) -> String {
        format!(
            "{}/{}",
            self.shown.trim_end_matches('/'),
            Self::blob_path(id)
        )
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_hashes_and_nothing_else() {
        let good = "ab".repeat(32);
        assert_eq!(BlobId::parse(&good).unwrap().as_str(), good);
        for bad in [
            "",
            "../../etc/passwd",
            &"AB".repeat(32),
            &"ab".repeat(33),
            &format!("{}/x", "a".repeat(62)),
        ] {
            assert!(BlobId::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_blob_that_does_not_hash_to_its_address_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = BackupStore::open(dir.path().to_str().unwrap()).unwrap();
        let body = Bytes::from_static(b"hello");
        let id = BlobId::parse(&hex::encode(Sha256::digest(&body))).unwrap();
        let wrong = BlobId::parse(&"0".repeat(64)).unwrap();
        let stream = |b: Bytes| futures::stream::iter([anyhow::Ok(b)]);
        let err = store
            .put_blob(&wrong, 5, stream(body.clone()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nothing kept"), "{err}");
        assert!(!store.has_blob(&wrong, 5).await.unwrap());
        store.put_blob(&id, 5, stream(body.clone())).await.unwrap();
        assert!(store.has_blob(&id, 5).await.unwrap());
        assert!(matches!(
            store.check_blob(&id, 5).await.unwrap(),
            BlobCheck::Intact
        ));
        assert!(matches!(
            store.check_blob(&wrong, 5).await.unwrap(),
            BlobCheck::Missing
        ));
    }
}
