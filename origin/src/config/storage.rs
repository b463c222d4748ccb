//! The `[storage]` section: where this region keeps its blobs.
//!
//! ```toml
//! [storage]
//! backend = "s3"                     # or "local" (the default: data_dir)
//! bucket = "waypost-eu"
//! endpoint = "http://127.0.0.1:3900" # any S3-compatible store; omit for AWS
//! region = "garage"
//! access_key_id = "..."
//! secret_access_key = "..."
//! prefix = "blobs-of-region-1"       # optional key prefix inside the bucket
//! ```
//!
//! Correctness never relies on S3 conditional writes (some S3-compatible
//! stores ignore or race them): blobs are content-addressed, so writing the
//! same key twice stores the same bytes, and the metadata lives in Raft.
//!
//! Either way an upload is acknowledged only once a majority of voting
//! regions holds its blob ([`crate::peers::push`]). Regions sharing one
//! bucket and prefix find the blob already there, so for them that check is
//! one `HEAD` per peer and no copying; no setting is needed to say so.

use serde::Deserialize;
use service_base::config_file::FieldError;

/// A validated storage backend choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StorageConfig {
    /// `object_store`'s local file system under `data_dir`.
    #[default]
    Local,
    S3(S3Config),
}

/// An S3-compatible bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// `http(s)://host:port` of an S3-compatible store; `None` means AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Key prefix inside the bucket, so regions or platforms can share one.
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    backend: Option<String>,
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    prefix: Option<String>,
}

impl RawStorage {
    pub(super) fn validate(self) -> Result<StorageConfig, FieldError> {
        match self.backend.as_deref().unwrap_or("local") {
            "local" => Ok(StorageConfig::Local),
            "s3" => {
                let need = |field: &str, value: Option<String>| {
                    value.filter(|v| !v.is_empty()).ok_or_else(|| {
                        FieldError::new(
                            format!("storage.{field}"),
                            "is required when backend = \"s3\"",
                        )
                    })
                };
                let config = S3Config {
                    bucket: need("bucket", self.bucket)?,
                    endpoint: self.endpoint,
                    region: self.region.unwrap_or_else(|| "us-east-1".into()),
                    access_key_id: need("access_key_id", self.access_key_id)?,
                    secret_access_key: need("secret_access_key", self.secret_access_key)?,
                    prefix: self.prefix,
                };
                let storage = StorageConfig::S3(config);
                storage.validate()?;
                Ok(storage)
            }
            other => Err(FieldError::new(
                "storage.backend",
                format!("`{other}` is not a backend; use \"local\" or \"s3\""),
            )),
        }
    }
}

impl StorageConfig {
    /// Checks what `RawStorage::validate` checks, for configs built in code.
    pub fn validate(&self) -> Result<(), FieldError> {
        let StorageConfig::S3(s3) = self else {
            return Ok(());
        };
        if let Some(endpoint) = &s3.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(FieldError::new(
                "storage.endpoint",
                format!("`{endpoint}` must be a URL like http://127.0.0.1:3900"),
            ));
        }
        if s3.bucket.is_empty() {
            return Err(FieldError::new("storage.bucket", "must not be empty"));
        }
        Ok(())
    }
}
