//! The origin's change-feed events as the edge reads them, and what each
//! one does to this edge.
//!
//! Event types the edge does not know (an origin newer than the edge) are
//! skipped, so an upgrade of the origins never stops the edges' feed.

use serde::Deserialize;

/// One page of `GET /events`.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub events: Vec<Event>,
    /// The newest event the answering origin has applied.
    pub last_seq: u64,
}

#[derive(Debug, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A new version of an asset: cached copies of its URL are now wrong.
    AssetPut {
        path: String,
    },
    AssetDeleted {
        path: String,
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
    /// A KV write: plugins' cached reads of the key are now wrong.
    KvPut {
        namespace: String,
        key: String,
    },
    KvDeleted {
        namespace: String,
        key: String,
    },
    /// A plugin version published to the origin's registry.
    PluginVersion {
        name: String,
        sha256: String,
    },
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
            EventKind::Other => "other",
        }
    }
}

/// The URL path an edge serves an origin asset under (the origin names
/// assets without the `/assets/` prefix), decoded: the cache compares
/// decoded paths, so a client's choice of percent-encoding does not matter.
pub fn asset_url_path(asset: &str) -> String {
    format!("/assets/{}", asset.trim_start_matches('/'))
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
                {"seq":5,"type":"from_the_future","whatever":[1,2]}
            ],"last_seq":5}"#,
        )
        .unwrap();
        let kinds: Vec<&str> = page.events.iter().map(|e| e.kind.label()).collect();
        assert_eq!(
            kinds,
            ["asset_put", "kv_put", "purge", "plugin_version", "other"]
        );
        assert_eq!(page.events[0].seq, 1);
        assert_eq!(page.last_seq, 5);
    }

    #[test]
    fn maps_asset_names_to_url_paths() {
        assert_eq!(asset_url_path("static/app.js"), "/assets/static/app.js");
        assert_eq!(asset_url_path("a b/ü.txt"), "/assets/a b/ü.txt");
        assert_eq!(purge_url_path("/assets/x?v=1"), "/assets/x?v=1");
        assert_eq!(purge_url_path("x"), "/assets/x");
    }
}
