//! Backups: the replicated state at one Raft index as the origin dumps it
//! (`GET /backup/state`), and the manifest `waypost backup` writes beside
//! the content-addressed blobs it copies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::QueueName;
use crate::queues::QueueSpec;

/// Version of [`StateDump`] and [`Manifest`].
pub const FORMAT: u32 = 1;

/// Everything the origin replicates, at one applied Raft index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDump {
    pub format: u32,
    /// The index the dump was read at (after a read-index round, so it
    /// holds every write acknowledged before the request).
    pub raft_index: u64,
    pub taken_at_ms: u64,
    pub assets: BTreeMap<String, AssetRecord>,
    pub kv: BTreeMap<String, BTreeMap<String, String>>,
    pub plugins: BTreeMap<String, BlobRef>,
    pub queues: Vec<QueueRecord>,
}

impl StateDump {
    /// Every blob the state references (assets, plugin versions, large
    /// queue messages), once.
    pub fn blobs(&self) -> BTreeMap<String, u64> {
        let assets = self.assets.values().map(|a| (a.sha256.clone(), a.size));
        let plugins = self.plugins.values().map(|p| (p.sha256.clone(), p.size));
        let queued = self
            .queues
            .iter()
            .flat_map(|q| q.large_messages.iter().chain(&q.large_dead_letters))
            .map(|b| (b.sha256.clone(), b.size));
        assets.chain(plugins).chain(queued).collect()
    }

    /// Whether there is nothing in it (a fresh cluster).
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
            && self.kv.is_empty()
            && self.plugins.is_empty()
            && self.queues.is_empty()
    }
}

/// One asset's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRecord {
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub cache_control: Option<String>,
    pub surrogate_keys: Vec<String>,
    pub last_modified: u64,
}

/// A content-addressed blob (the one definition, shared with queues).
pub use crate::queues::BlobRef;

/// A queue's spec and the bodies it holds, oldest first (dead letters
/// included: a restore re-enqueues them as fresh messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecord {
    pub name: QueueName,
    pub spec: QueueSpec,
    pub messages: Vec<String>,
    pub dead_letters: Vec<String>,
    /// Messages whose bodies the origin keeps as blobs (over
    /// [`crate::queues::INLINE_BODY`]); the backup copies the blobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_messages: Vec<BlobRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_dead_letters: Vec<BlobRef>,
}

/// One backup: the state and what verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created_at_ms: u64,
    /// SHA-256 of the state file's bytes.
    pub state_sha256: String,
    pub raft_index: u64,
    /// Blob address → size, every one the state references.
    pub blobs: BTreeMap<String, u64>,
}
