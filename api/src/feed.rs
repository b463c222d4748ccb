//! The change feed (`GET /events`, `GET /events/stream`): what the origin
//! writes and every edge reads.
//!
//! Readers skip event types they do not know ([`EventKind::Other`]) and
//! fields they do not know, so origins can be upgraded before edges. A
//! change that old readers would misread instead raises [`FEED_VERSION`].

use serde::{Deserialize, Serialize};

/// The feed format this build writes and reads. Pages without a version
/// come from origins older than the field and are version 1.
pub const FEED_VERSION: u32 = 1;

/// The URL prefix edges serve origin assets under.
pub const ASSETS_PREFIX: &str = "/assets/";

/// One page of `GET /events?after=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    #[serde(default = "version_one")]
    pub version: u32,
    pub events: Vec<Event>,
    /// The newest event the answering origin has applied.
    pub last_seq: u64,
    /// For a reader that named its [`EventClass`]es: those whose events
    /// after its position are no longer all kept (the page holds what is).
    /// The reader catches up on each without the lost events: a cache
    /// revalidates what it stored, a KV read cache forgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<EventClass>,
}

/// The groups of events a reader follows (`GET /events?classes=content,kv`).
/// The origin keeps each in a window of its own, so one group's churn (KV
/// writes by plugins, at thousands a second) cannot push another's
/// (deploys and purges, which a cache cannot afford to miss) out of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventClass {
    /// Assets, purges and plugin versions: what cached responses and
    /// running plugins depend on.
    Content,
    /// KV writes: what plugins' cached KV reads depend on.
    Kv,
}

impl EventClass {
    pub const ALL: [EventClass; 2] = [EventClass::Content, EventClass::Kv];

    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::Content => "content",
            EventClass::Kv => "kv",
        }
    }

    /// Parses the `classes` query parameter: names separated by commas.
    pub fn parse_list(text: &str) -> Result<Vec<EventClass>, String> {
        let mut classes = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let class = Self::ALL
                .into_iter()
                .find(|c| c.as_str() == name)
                .ok_or_else(|| {
                    format!("unknown event class {name:?} in `classes` (known: content, kv)")
                })?;
            if !classes.contains(&class) {
                classes.push(class);
            }
        }
        if classes.is_empty() {
            return Err("`classes` names no event class (known: content, kv)".into());
        }
        classes.sort();
        Ok(classes)
    }

    /// The query parameter's value for `classes`.
    pub fn list(classes: &[EventClass]) -> String {
        classes
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn version_one() -> u32 {
    1
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
    /// A new version of an asset: cached copies of its URL are now wrong.
    AssetPut {
        path: String,
        #[serde(default)]
        sha256: String,
        #[serde(default)]
        surrogate_keys: Vec<String>,
    },
    AssetDeleted {
        path: String,
    },
    /// A KV write: plugins' cached reads of the key are now wrong.
    KvPut {
        namespace: String,
        key: String,
    },
    KvDeleted {
        namespace: String,
        key: String,
    },
    /// An operator's purge, replicated to every edge.
    Purge {
        #[serde(default)]
        paths: Vec<String>,
        #[serde(default)]
        surrogate_keys: Vec<String>,
        #[serde(default)]
        soft: bool,
    },
    /// A plugin version published to the registry: edges fetch
    /// `GET /plugins/{name}` and swap it in once the bytes hash to `sha256`.
    PluginVersion {
        name: String,
        sha256: String,
        #[serde(default)]
        size: u64,
    },
    PluginDeleted {
        name: String,
    },
    /// A type this build does not know (a newer origin); skipped.
    #[serde(other)]
    Other,
}

impl EventKind {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            EventKind::AssetPut { .. } => "asset_put",
            EventKind::AssetDeleted { .. } => "asset_deleted",
            EventKind::Purge { .. } => "purge",
            EventKind::KvPut { .. } => "kv_put",
            EventKind::KvDeleted { .. } => "kv_deleted",
            EventKind::PluginVersion { .. } => "plugin_version",
            EventKind::PluginDeleted { .. } => "plugin_deleted",
            EventKind::Other => "other",
        }
    }

    /// The class this event belongs to; `None` for a type this build
    /// does not know.
    pub fn class(&self) -> Option<EventClass> {
        match self {
            EventKind::KvPut { .. } | EventKind::KvDeleted { .. } => Some(EventClass::Kv),
            EventKind::Other => None,
            _ => Some(EventClass::Content),
        }
    }
}

/// The URL path an edge serves an origin asset under (the origin names
/// assets without the `/assets/` prefix), decoded: the cache compares
/// decoded paths, so a client's choice of percent-encoding does not matter.
pub fn asset_url_path(asset: &str) -> String {
    format!("{ASSETS_PREFIX}{}", asset.trim_start_matches('/'))
}

/// A purge path: a URL path as clients request it (`/assets/app.js`), or an
/// origin asset name (`app.js`), which is mapped to its URL path.
pub fn purge_url_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        asset_url_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_skips_unknown_types() {
        let page: Page = serde_json::from_str(
            r#"{"events":[
                {"seq":1,"type":"asset_put","path":"a b.txt","sha256":"00","surrogate_keys":[]},
                {"seq":2,"type":"kv_put","namespace":"n","key":"k"},
                {"seq":3,"type":"purge","paths":["/x"],"surrogate_keys":["k"],"soft":true},
                {"seq":4,"type":"plugin_version","name":"hello","sha256":"ab","size":3},
                {"seq":5,"type":"from_the_future","whatever":[1,2]},
                {"seq":6,"type":"kv_deleted","namespace":"n","key":"k","new_field":1}
            ],"last_seq":6}"#,
        )
        .unwrap();
        let kinds: Vec<&str> = page.events.iter().map(|e| e.kind.label()).collect();
        assert_eq!(
            kinds,
            [
                "asset_put",
                "kv_put",
                "purge",
                "plugin_version",
                "other",
                "kv_deleted"
            ]
        );
        assert_eq!(page.version, 1, "a page without a version is version 1");
        assert_eq!(page.last_seq, 6);
    }

    #[test]
    fn every_known_event_round_trips() {
        let kinds = [
            EventKind::AssetPut {
                path: "a".into(),
                sha256: "00".into(),
                surrogate_keys: vec!["k".into()],
            },
            EventKind::AssetDeleted { path: "a".into() },
            EventKind::KvPut {
                namespace: "n".into(),
                key: "k".into(),
            },
            EventKind::KvDeleted {
                namespace: "n".into(),
                key: "k".into(),
            },
            EventKind::Purge {
                paths: vec!["/x".into()],
                surrogate_keys: vec![],
                soft: true,
            },
            EventKind::PluginVersion {
                name: "p".into(),
                sha256: "ab".into(),
                size: 3,
            },
            EventKind::PluginDeleted { name: "p".into() },
        ];
        for (seq, kind) in kinds.into_iter().enumerate() {
            let event = Event {
                seq: seq as u64,
                kind,
            };
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(
                serde_json::from_str::<Event>(&json).unwrap(),
                event,
                "{json}"
            );
        }
    }

    #[test]
    fn parses_class_lists_and_names_the_unknown() {
        assert_eq!(
            EventClass::parse_list("kv, content,kv").unwrap(),
            [EventClass::Content, EventClass::Kv]
        );
        assert_eq!(EventClass::list(&EventClass::ALL), "content,kv");
        let err = EventClass::parse_list("content,queues").unwrap_err();
        assert!(err.contains("\"queues\""), "{err}");
        assert!(EventClass::parse_list(" , ").is_err());
    }

    #[test]
    fn a_page_without_missed_classes_omits_the_field() {
        let page = Page {
            version: FEED_VERSION,
            events: vec![],
            last_seq: 3,
            missed: vec![],
        };
        let json = serde_json::to_string(&page).unwrap();
        assert!(!json.contains("missed"), "{json}");
        let page: Page =
            serde_json::from_str(r#"{"events":[],"last_seq":3,"missed":["kv"]}"#).unwrap();
        assert_eq!(page.missed, [EventClass::Kv]);
    }

    #[test]
    fn maps_asset_names_to_url_paths() {
        assert_eq!(asset_url_path("static/app.js"), "/assets/static/app.js");
        assert_eq!(asset_url_path("a b/ü.txt"), "/assets/a b/ü.txt");
        assert_eq!(purge_url_path("/assets/x?v=1"), "/assets/x?v=1");
        assert_eq!(purge_url_path("x"), "/assets/x");
    }
}
