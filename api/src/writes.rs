//! Requests and answers of the origin's write API other than KV values:
//! purges and plugin publishing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /purge`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub surrogate_keys: Vec<String>,
    #[serde(default)]
    pub soft: bool,
}

/// What an accepted write answers: the change-feed sequence number it
/// produced, which edges will see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub seq: Option<u64>,
}

/// What `PUT /plugins/{name}` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlugin {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    pub seq: Option<u64>,
}

/// `GET /plugins`: plugin name → SHA-256 of its current version.
pub type PluginListing = BTreeMap<String, String>;
