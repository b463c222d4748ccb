//! The replicated state: the asset index, KV namespaces, the plugin
//! registry and the event log.
//!
//! Every origin applies the same committed commands in the same order, so
//! everything here must be deterministic: no clocks, no randomness (the
//! proposer puts timestamps into the command). Reads are served from this
//! state locally; only writes go through Raft.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::store::AssetMeta;

/// How many events the feed keeps; a subscriber further behind than this
/// gets `410 Gone` and must resynchronise from a full listing.
pub const EVENTS_KEPT: usize = 10_000;

/// A write, as proposed to the leader and stored in the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    PutAsset {
        path: String,
        meta: AssetMeta,
    },
    DeleteAsset {
        path: String,
    },
    KvPut {
        namespace: String,
        key: String,
        value: String,
    },
    KvDelete {
        namespace: String,
        key: String,
    },
    Purge {
        paths: Vec<String>,
        surrogate_keys: Vec<String>,
        soft: bool,
    },
    /// Makes the blob `sha256` the current version of plugin `name`.
    PutPlugin {
        name: String,
        sha256: String,
        size: u64,
    },
    DeletePlugin {
        name: String,
    },
}

/// The current version of one plugin: a content-addressed wasm blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersion {
    pub sha256: String,
    pub size: u64,
}

/// What applying a command did, returned to the writer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the key existed before the command.
    pub existed: bool,
    /// The event the command produced, if it changed anything.
    pub seq: Option<u64>,
    /// For asset writes: the metadata now stored (Last-Modified may have
    /// been kept from the previous version).
    pub asset: Option<AssetMeta>,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    AssetPut {
        path: String,
        sha256: String,
        surrogate_keys: Vec<String>,
    },
    AssetDeleted {
        path: String,
    },
    KvPut {
        namespace: String,
        key: String,
    },
    KvDeleted {
        namespace: String,
        key: String,
    },
    Purge {
        paths: Vec<String>,
        surrogate_keys: Vec<String>,
        soft: bool,
    },
    /// Edges fetch `GET /plugins/{name}` when they see this and swap the
    /// plugin in once the bytes hash to `sha256`.
    PluginVersion {
        name: String,
        sha256: String,
        size: u64,
    },
    PluginDeleted {
        name: String,
    },
}

/// The state machine's data; serialised whole into snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub assets: BTreeMap<String, AssetMeta>,
    pub kv: BTreeMap<String, BTreeMap<String, String>>,
    /// The newest [`EVENTS_KEPT`] events, oldest first.
    pub events: VecDeque<Event>,
    /// The sequence number of the newest event ever produced.
    pub last_seq: u64,
    /// Plugin name → current version. Defaulted so snapshots written
    /// before the registry existed still load (same snapshot format).
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginVersion>,
}

impl State {
    /// Applies one committed command.
    pub fn apply(&mut self, command: Command) -> Outcome {
        match command {
            Command::PutAsset { path, mut meta } => {
                let previous = self.assets.get(&path);
                // Same bytes as before: keep Last-Modified so caches holding
                // the old copy still validate with If-Modified-Since.
                if let Some(p) = previous.filter(|p| p.sha256 == meta.sha256) {
                    meta.last_modified = p.last_modified;
                }
                let existed = previous.is_some();
                let kind = EventKind::AssetPut {
                    path: path.clone(),
                    sha256: meta.sha256.clone(),
                    surrogate_keys: meta.surrogate_keys.clone(),
                };
                self.assets.insert(path, meta.clone());
                Outcome {
                    existed,
                    seq: Some(self.push(kind)),
                    asset: Some(meta),
                }
            }
            Command::DeleteAsset { path } => {
                if self.assets.remove(&path).is_none() {
                    return Outcome::default();
                }
                let seq = self.push(EventKind::AssetDeleted { path });
                Outcome {
                    existed: true,
                    seq: Some(seq),
                    asset: None,
                }
            }
            Command::KvPut {
                namespace,
                key,
                value,
            } => {
                let existed = self
                    .kv
                    .entry(namespace.clone())
                    .or_default()
                    .insert(key.clone(), value)
                    .is_some();
                let seq = self.push(EventKind::KvPut { namespace, key });
                Outcome {
                    existed,
                    seq: Some(seq),
                    asset: None,
                }
            }
            Command::KvDelete { namespace, key } => {
                let Some(ns) = self.kv.get_mut(&namespace) else {
                    return Outcome::default();
                };
                if ns.remove(&key).is_none() {
                    return Outcome::default();
                }
                if ns.is_empty() {
                    self.kv.remove(&namespace);
                }
                let seq = self.push(EventKind::KvDeleted { namespace, key });
                Outcome {
                    existed: true,
                    seq: Some(seq),
                    asset: None,
                }
            }
            Command::Purge {
                paths,
                surrogate_keys,
                soft,
            } => {
                let seq = self.push(EventKind::Purge {
                    paths,
                    surrogate_keys,
                    soft,
                });
                Outcome {
                    existed: false,
                    seq: Some(seq),
                    asset: None,
                }
            }
            Command::PutPlugin { name, sha256, size } => {
                let version = PluginVersion {
                    sha256: sha256.clone(),
                    size,
                };
                let existed = self.plugins.insert(name.clone(), version).is_some();
                // Re-deploying the same bytes still produces an event: a
                // deploy tool can wait for it, and edges skip a version
                // they already run by its hash.
                let seq = self.push(EventKind::PluginVersion { name, sha256, size });
                Outcome {
                    existed,
                    seq: Some(seq),
                    asset: None,
                }
            }
            Command::DeletePlugin { name } => {
                if self.plugins.remove(&name).is_none() {
                    return Outcome::default();
                }
                let seq = self.push(EventKind::PluginDeleted { name });
                Outcome {
                    existed: true,
                    seq: Some(seq),
                    asset: None,
                }
            }
        }
    }

    /// Events with a sequence number above `after`, at most `limit`; `None`
    /// when `after` is older than the oldest event kept (a gap).
    pub fn events_after(&self, after: u64, limit: usize) -> Option<Vec<Event>> {
        let oldest = self.events.front().map_or(self.last_seq + 1, |e| e.seq);
        if after.saturating_add(1) < oldest && after < self.last_seq {
            return None;
        }
        let skip = after.saturating_add(1).saturating_sub(oldest) as usize;
        Some(self.events.iter().skip(skip).take(limit).cloned().collect())
    }

    fn push(&mut self, kind: EventKind) -> u64 {
        self.last_seq += 1;
        self.events.push_back(Event {
            seq: self.last_seq,
            kind,
        });
        if self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
        self.last_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> Command {
        Command::KvPut {
            namespace: "n".into(),
            key: key.into(),
            value: value.into(),
        }
    }

    fn asset(sha: &str, at: u64) -> Command {
        Command::PutAsset {
            path: "a.txt".into(),
            meta: AssetMeta {
                format: crate::store::meta::FORMAT,
                sha256: sha.into(),
                size: 1,
                content_type: "text/plain".into(),
                cache_control: None,
                surrogate_keys: vec![],
                last_modified: at,
            },
        }
    }

    #[test]
    fn same_bytes_keep_last_modified() {
        let mut s = State::default();
        assert!(!s.apply(asset("aa", 10)).existed);
        let again = s.apply(asset("aa", 20));
        assert!(again.existed);
        assert_eq!(again.asset.unwrap().last_modified, 10);
        assert_eq!(s.apply(asset("bb", 30)).asset.unwrap().last_modified, 30);
    }

    #[test]
    fn events_resume_without_gaps_or_duplicates() {
        let mut s = State::default();
        for i in 0..5 {
            s.apply(kv(&i.to_string(), "v"));
        }
        let first = s.events_after(0, 2).unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        let rest = s.events_after(2, 100).unwrap();
        assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(s.events_after(5, 100).unwrap().is_empty());
    }

    #[test]
    fn trimmed_events_report_a_gap() {
        let mut s = State::default();
        for i in 0..EVENTS_KEPT + 3 {
            s.apply(kv(&i.to_string(), "v"));
        }
        assert!(s.events_after(0, 1).is_none());
        assert_eq!(s.events_after(3, 1).unwrap()[0].seq, 4);
    }

    #[test]
    fn plugin_versions_are_events_with_the_edge_contract() {
        let mut s = State::default();
        let put = |sha: &str| Command::PutPlugin {
            name: "hello".into(),
            sha256: sha.into(),
            size: 8,
        };
        assert!(!s.apply(put("aa")).existed);
        assert!(s.apply(put("bb")).existed);
        assert_eq!(s.plugins["hello"].sha256, "bb");
        let event = serde_json::to_value(&s.events[1]).unwrap();
        assert_eq!(
            event,
            serde_json::json!({"seq": 2, "type": "plugin_version", "name": "hello", "sha256": "bb", "size": 8})
        );
        let deleted = s.apply(Command::DeletePlugin {
            name: "hello".into(),
        });
        assert_eq!(deleted.seq, Some(3));
        assert!(s.plugins.is_empty());
        let again = s.apply(Command::DeletePlugin {
            name: "hello".into(),
        });
        assert_eq!(again, Outcome::default());
    }

    #[test]
    fn state_written_before_the_plugin_registry_still_loads() {
        let old = r#"{"assets":{},"kv":{"n":{"k":"v"}},"events":[],"last_seq":4}"#;
        let s: State = serde_json::from_str(old).unwrap();
        assert_eq!(s.last_seq, 4);
        assert!(s.plugins.is_empty());
    }

    #[test]
    fn deleting_nothing_produces_no_event() {
        let mut s = State::default();
        let out = s.apply(Command::KvDelete {
            namespace: "n".into(),
            key: "k".into(),
        });
        assert_eq!(out, Outcome::default());
        assert_eq!(s.last_seq, 0);
    }
}
