//! The replicated state: the asset index, KV namespaces, the plugin
//! registry and the event log.
//!
//! Every origin applies the same committed commands in the same order, so
//! everything here must be deterministic: no clocks, no randomness (the
//! proposer puts timestamps into the command). Reads are served from this
//! state locally; only writes go through Raft.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::blob_refs::BlobRefs;
use super::conditions::{self, Conditions};
use super::event_log::{EventLog, FeedRead, Retention};
use super::queues::{self, QueueCommand, QueueReply, Queues};
use super::validate::{InvalidCommand, Refusal};
use crate::http_cond::Validators;
use crate::store::AssetMeta;

/// A write, as proposed to the leader and stored in the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    PutAsset {
        path: String,
        meta: AssetMeta,
        /// Decided against the asset current at commit ([`conditions`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        precondition: Option<Conditions>,
    },
    DeleteAsset {
        path: String,
    },
    KvPut {
        namespace: String,
        key: String,
        value: String,
        /// Decided against the value current at commit; its entity tag is
        /// [`conditions::kv_etag`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        precondition: Option<Conditions>,
    },
    KvDelete {
        namespace: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        precondition: Option<Conditions>,
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
    /// Records the incarnation of node `node_id` ([`super::identity`]);
    /// the first one recorded for an id stays.
    RegisterIncarnation {
        node_id: u64,
        incarnation: u64,
    },
    /// A change to one queue ([`super::queues`]); it produces no event:
    /// queue traffic would push edges' cache events out of the feed.
    Queue(QueueCommand),
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
    /// Set when the command changed nothing because it was invalid or its
    /// precondition did not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    /// For queue commands: what they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueReply>,
}

impl Outcome {
    fn refused(refusal: impl Into<Refusal>) -> Self {
        Self {
            refused: Some(refusal.into()),
            ..Self::default()
        }
    }
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
#[serde(from = "StoredState")]
pub struct State {
    pub assets: BTreeMap<String, AssetMeta>,
    pub kv: BTreeMap<String, BTreeMap<String, String>>,
    /// The newest events of each class ([`EventLog`]).
    pub feed: EventLog,
    /// The sequence number of the newest event ever produced.
    pub last_seq: u64,
    /// Plugin name → current version. Defaulted so snapshots written
    /// before the registry existed still load (same snapshot format).
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginVersion>,
    /// Node id → the incarnation it registered: a node with a blank store
    /// whose id is here was wiped and must not rejoin under that id.
    /// Defaulted so older snapshots load.
    #[serde(default)]
    pub incarnations: BTreeMap<u64, u64>,
    /// Defaulted so snapshots from before queues load.
    #[serde(default)]
    pub queues: Queues,
    /// Derived from `assets` and `plugins` when a state is loaded.
    #[serde(skip)]
    blob_refs: BlobRefs,
}

/// [`State`] as snapshots store it (without what is derived from it).
#[derive(Deserialize)]
struct StoredState {
    assets: BTreeMap<String, AssetMeta>,
    kv: BTreeMap<String, BTreeMap<String, String>>,
    /// Snapshots from before [`EventLog`] kept one window here.
    #[serde(default)]
    events: VecDeque<Event>,
    #[serde(default)]
    feed: Option<EventLog>,
    last_seq: u64,
    #[serde(default)]
    plugins: BTreeMap<String, PluginVersion>,
    #[serde(default)]
    incarnations: BTreeMap<u64, u64>,
    #[serde(default)]
    queues: Queues,
}

impl From<StoredState> for State {
    fn from(s: StoredState) -> Self {
        let blobs = s.assets.values().map(|m| (m.sha256.as_str(), m.size));
        let plugin_blobs = s.plugins.values().map(|p| (p.sha256.as_str(), p.size));
        let blob_refs = BlobRefs::build(blobs.chain(plugin_blobs));
        Self {
            assets: s.assets,
            kv: s.kv,
            feed: s
                .feed
                .unwrap_or_else(|| EventLog::from_single_window(s.events)),
            last_seq: s.last_seq,
            plugins: s.plugins,
            incarnations: s.incarnations,
            queues: s.queues,
            blob_refs,
        }
    }
}

impl State {
    /// Applies one committed command. An invalid command, or one whose
    /// precondition fails, changes nothing and says why in
    /// [`Outcome::refused`]; the decision depends only on the command and
    /// the state, so every replica makes it alike.
    pub fn apply(&mut self, command: Command) -> Outcome {
        if let Err(e) = command.check() {
            return Outcome::refused(e);
        }
        match command {
            Command::PutAsset {
                path,
                meta,
                precondition,
            } => self.put_asset(path, meta, precondition),
            Command::DeleteAsset { path } => {
                let Some(old) = self.assets.remove(&path) else {
                    return Outcome::default();
                };
                self.blob_refs.remove(&old.sha256);
                let seq = self.push(EventKind::AssetDeleted { path });
                Outcome {
                    existed: true,
                    seq: Some(seq),
                    ..Outcome::default()
                }
            }
            Command::KvPut {
                namespace,
                key,
                value,
                precondition,
            } => {
                let current = self.kv.get(&namespace).and_then(|n| n.get(&key));
                if let Some(refusal) = refuse_kv(precondition.as_ref(), current) {
                    return refusal;
                }
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
                    ..Outcome::default()
                }
            }
            Command::KvDelete {
                namespace,
                key,
                precondition,
            } => {
                let current = self.kv.get(&namespace).and_then(|n| n.get(&key));
                if let Some(refusal) = refuse_kv(precondition.as_ref(), current) {
                    return refusal;
                }
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
                    ..Outcome::default()
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
                    seq: Some(seq),
                    ..Outcome::default()
                }
            }
            Command::PutPlugin { name, sha256, size } => {
                if let Err(e) = self.check_blob_size(&sha256, size) {
                    return Outcome::refused(e);
                }
                let version = PluginVersion {
                    sha256: sha256.clone(),
                    size,
                };
                self.blob_refs.add(&sha256, size);
                let previous = self.plugins.insert(name.clone(), version);
                let existed = previous.is_some();
                if let Some(old) = previous {
                    self.blob_refs.remove(&old.sha256);
                }
                // Re-deploying the same bytes still produces an event: a
                // deploy tool can wait for it, and edges skip a version
                // they already run by its hash.
                let seq = self.push(EventKind::PluginVersion { name, sha256, size });
                Outcome {
                    existed,
                    seq: Some(seq),
                    ..Outcome::default()
                }
            }
            Command::RegisterIncarnation {
                node_id,
                incarnation,
            } => self.register(node_id, incarnation),
            Command::Queue(command) => match queues::apply(&mut self.queues, command) {
                Ok(reply) => Outcome {
                    queue: Some(reply),
                    ..Outcome::default()
                },
                Err(refusal) => Outcome::refused(refusal),
            },
            Command::DeletePlugin { name } => {
                let Some(old) = self.plugins.remove(&name) else {
                    return Outcome::default();
                };
                self.blob_refs.remove(&old.sha256);
                let seq = self.push(EventKind::PluginDeleted { name });
                Outcome {
                    existed: true,
                    seq: Some(seq),
                    ..Outcome::default()
                }
            }
        }
    }

    fn register(&mut self, node_id: u64, incarnation: u64) -> Outcome {
        let existed = self.incarnations.contains_key(&node_id);
        self.incarnations.entry(node_id).or_insert(incarnation);
        Outcome {
            existed,
            ..Outcome::default()
        }
    }

    fn put_asset(
        &mut self,
        path: String,
        mut meta: AssetMeta,
        precondition: Option<Conditions>,
    ) -> Outcome {
        let previous = self.assets.get(&path);
        if let Some(conditions) = &precondition {
            let current = previous.map(|p| Validators::new(&p.sha256, p.last_modified));
            if !conditions.hold(current.as_ref()) {
                return Outcome::refused(Refusal::PreconditionFailed);
            }
        }
        if let Err(e) = self.check_blob_size(&meta.sha256, meta.size) {
            return Outcome::refused(e);
        }
        // Same bytes as before: keep Last-Modified so caches holding the
        // old copy still validate with If-Modified-Since.
        if let Some(p) = previous.filter(|p| p.sha256 == meta.sha256) {
            meta.last_modified = p.last_modified;
        }
        let kind = EventKind::AssetPut {
            path: path.clone(),
            sha256: meta.sha256.clone(),
            surrogate_keys: meta.surrogate_keys.clone(),
        };
        self.blob_refs.add(&meta.sha256, meta.size);
        let previous = self.assets.insert(path, meta.clone());
        let existed = previous.is_some();
        if let Some(old) = previous {
            self.blob_refs.remove(&old.sha256);
        }
        Outcome {
            existed,
            seq: Some(self.push(kind)),
            asset: Some(meta),
            ..Outcome::default()
        }
    }

    /// A content address has one size: refuses a second, different one.
    fn check_blob_size(&self, sha256: &str, size: u64) -> Result<(), InvalidCommand> {
        match self.blob_refs.size_of(sha256) {
            Some(known) if known != size => Err(InvalidCommand::SizeMismatch {
                sha256: sha256.to_string(),
                known,
                claimed: size,
            }),
            _ => Ok(()),
        }
    }

    /// Events of every class with a sequence number above `after` (at most
    /// `limit`, [`super::event_log::EVENT_PAGE_BYTES`] of JSON, at least
    /// one); `None` when some were trimmed (a gap). Resume after the last.
    pub fn events_after(&self, after: u64, limit: usize) -> Option<Vec<Event>> {
        let read = self
            .feed
            .read(after, &waypost_api::feed::EventClass::ALL, limit);
        read.missed.is_empty().then_some(read.events)
    }

    /// The events of `classes` above `after`, and which of those classes
    /// had events trimmed ([`EventLog::read`]).
    pub fn read_feed(
        &self,
        after: u64,
        classes: &[waypost_api::feed::EventClass],
        limit: usize,
    ) -> FeedRead {
        self.feed.read(after, classes, limit)
    }

    /// Whether an asset, a plugin version or a queued message points at
    /// blob `sha256`.
    pub fn references_blob(&self, sha256: &str) -> bool {
        self.blob_refs.size_of(sha256).is_some()
            || self.queues.values().any(|q| q.references_blob(sha256))
    }

    /// How much of the feed this replica keeps from now on.
    pub fn set_feed_retention(&mut self, retention: Retention) {
        self.feed.set_retention(retention);
    }

    fn push(&mut self, kind: EventKind) -> u64 {
        self.last_seq += 1;
        self.feed.push(Event {
            seq: self.last_seq,
            kind,
        });
        self.last_seq
    }
}

/// The refusal for a KV write whose precondition fails on `current`.
fn refuse_kv(precondition: Option<&Conditions>, current: Option<&String>) -> Option<Outcome> {
    let conditions = precondition?;
    let current = current.map(|v| conditions::kv_validators(v));
    (!conditions.hold(current.as_ref())).then(|| Outcome::refused(Refusal::PreconditionFailed))
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
