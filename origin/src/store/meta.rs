//! Per-asset metadata: what the replicated asset index stores for each
//! asset name, pointing at a content-addressed blob.
//!
//! The record carries a format version (`"format": 1`) because it is
//! persisted inside the Raft log and snapshots; a later origin can read
//! what an older one wrote.

use serde::{Deserialize, Serialize};

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
