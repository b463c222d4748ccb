//! What each change-feed event does to this edge.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{FeedError, Follower};
use crate::plugin::Runtime;
use http::StatusCode;
use waypost_api::feed::{EventKind, asset_url_path, purge_url_path};

impl Follower {
    pub(super) async fn apply(&self, kind: &EventKind) {
        self.metrics.count(kind.label());
        match kind {
            EventKind::AssetPut { path, .. } | EventKind::AssetDeleted { path } => {
                let url_path = asset_url_path(path);
                let purged = self.cache.purge_path(&url_path, false).await;
                tracing::debug!(path = url_path, purged, "asset changed at the origin");
            }
            EventKind::Purge {
                paths,
                surrogate_keys,
                soft,
            } => {
                let mut purged = 0;
                for path in paths {
                    purged += self.cache.purge_path(&purge_url_path(path), *soft).await;
                }
                for key in surrogate_keys {
                    purged += self.cache.purge_surrogate_key(key, *soft).await;
                }
                tracing::info!(
                    ?paths,
                    ?surrogate_keys,
                    soft,
                    purged,
                    "purge from the origin's change feed"
                );
            }
            EventKind::KvPut { namespace, key } | EventKind::KvDeleted { namespace, key } => {
                if let Some(runtime) = &self.runtime {
                    runtime.forget_kv(namespace, key).await;
                }
            }
            EventKind::PluginVersion { name, sha256, .. } => {
                self.install_plugin(name, sha256).await
            }
            // A plugin removed from the registry keeps running here: the
            // edge's config names its plugins, and unloading one mid-flight
            // would fail its routes; the operator removes it from the config.
            EventKind::PluginDeleted { .. } | EventKind::Other => {}
        }
    }

    /// Installs the version of plugin `name` published at the origin, when
    /// this edge declares that plugin and runs another version.
    pub(super) async fn install_plugin(&self, name: &str, sha256: &str) {
        let (Some(runtime), true) = (&self.runtime, self.installs.iter().any(|n| n == name)) else {
            return;
        };
        if is_running(runtime, name, sha256) {
            return;
        }
        match self.fetch_plugin(name).await {
            Ok(Some(published)) => swap_in(runtime, name, published).await,
            Ok(None) => {
                tracing::warn!(
                    plugin = name,
                    sha256,
                    "a published plugin version was deleted at the origin before this edge fetched it; the running version keeps serving"
                );
            }
            Err(e) => {
                tracing::error!(plugin = name, sha256, error = %e, "could not fetch a published plugin version; the running version keeps serving (republish or PUT it to this edge's admin API)");
            }
        }
    }

    /// At startup: the plugins published while this edge was away (or
    /// before it existed) are installed before the feed is followed.
    pub(super) async fn install_published_plugins(&self) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        for name in &self.installs {
            match self.fetch_plugin(name).await {
                Ok(Some(published)) if !is_running(runtime, name, &published.sha256) => {
                    swap_in(runtime, name, published).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(plugin = name, error = %e, "could not check the origin for a published version of this plugin; the configured version serves until the feed announces one")
                }
            }
        }
    }

    /// The current bytes of plugin `name` at the origin (`None` if none is
    /// published), checked against the hash the origin states for them.
    async fn fetch_plugin(&self, name: &str) -> Result<Option<Published>, FeedError> {
        let path = format!("/plugins/{name}");
        let (status, headers, body) = self.get(&path).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let stated = headers
            .get(waypost_api::headers::PLUGIN_SHA256)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status != StatusCode::OK {
            return Err(FeedError::Status {
                status,
                path,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        let got = hex::encode(Sha256::digest(&body));
        if stated.as_deref() != Some(got.as_str()) {
            return Err(FeedError::Body {
                path,
                reason: format!(
                    "the body hashes to {got} but the origin stated {}",
                    stated.as_deref().unwrap_or("no hash")
                ),
            });
        }
        Ok(Some(Published {
            bytes: body.to_vec(),
            sha256: got,
        }))
    }
}

/// A plugin version fetched from the origin, with its checked hash.
struct Published {
    bytes: Vec<u8>,
    sha256: String,
}

/// Whether the version of `name` serving here is the one hashing to
/// `sha256` (a plugin's version is a prefix of its hash).
fn is_running(runtime: &Runtime, name: &str, sha256: &str) -> bool {
    runtime
        .slot(name)
        .is_some_and(|slot| sha256.starts_with(&*slot.current().version))
}

/// Compiles and swaps in `published`; a version that fails to load is
/// logged and the running one keeps serving.
async fn swap_in(runtime: &Arc<Runtime>, name: &str, published: Published) {
    let sha256 = published.sha256;
    match runtime.upload(name, published.bytes).await {
        Ok(version) => tracing::info!(
            plugin = name,
            version,
            "installed the plugin version published at the origin"
        ),
        Err(e) => {
            tracing::error!(plugin = name, sha256, error = %e, "the plugin version published at the origin does not load here; the running version keeps serving");
        }
    }
}
