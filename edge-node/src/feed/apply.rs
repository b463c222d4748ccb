//! What each change-feed event does to this edge.

use sha2::{Digest, Sha256};

use super::event::{EventKind, asset_url_path, purge_url_path};
use super::{FeedError, Follower};
use http::StatusCode;

impl Follower {
    pub(super) async fn apply(&self, kind: &EventKind) {
        self.metrics.count(kind.label());
        match kind {
            EventKind::AssetPut { path } | EventKind::AssetDeleted { path } => {
                let url_path = asset_url_path(path);
                let purged = self.cache.purge_path(&url_path, false);
                tracing::debug!(path = url_path, purged, "asset changed at the origin");
            }
            EventKind::Purge {
                paths,
                surrogate_keys,
                soft,
            } => {
                let mut purged = 0;
                for path in paths {
                    purged += self.cache.purge_path(&purge_url_path(path), *soft);
                }
                for key in surrogate_keys {
                    purged += self.cache.purge_surrogate_key(key, *soft);
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
            EventKind::PluginVersion { name, sha256 } => self.install_plugin(name, sha256).await,
            EventKind::Other => {}
        }
    }

    /// Installs the version of plugin `name` published at the origin, when
    /// this edge declares that plugin and runs another version. A version
    /// that fails to load is logged and the running one keeps serving.
    pub(super) async fn install_plugin(&self, name: &str, sha256: &str) {
        let (Some(runtime), true) = (&self.runtime, self.installs.iter().any(|n| n == name)) else {
            return;
        };
        let Some(slot) = runtime.slot(name) else {
            tracing::debug!(
                plugin = name,
                "published plugin is not declared on this edge"
            );
            return;
        };
        if sha256.starts_with(&*slot.current().version) {
            return;
        }
        let bytes = match self.fetch_plugin(name).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                tracing::warn!(
                    plugin = name,
                    sha256,
                    "a published plugin version was deleted at the origin before this edge fetched it; the running version keeps serving"
                );
                return;
            }
            Err(e) => {
                tracing::error!(plugin = name, sha256, error = %e, "could not fetch a published plugin version; the running version keeps serving (republish or PUT it to this edge's admin API)");
                return;
            }
        };
        match runtime.upload(name, bytes).await {
            Ok(version) => {
                tracing::info!(
                    plugin = name,
                    version,
                    "installed the plugin version published at the origin"
                );
            }
            Err(e) => {
                tracing::error!(plugin = name, sha256, error = %e, "the plugin version published at the origin does not load here; the running version keeps serving");
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
                Ok(Some(bytes)) => {
                    let sha256 = hex::encode(Sha256::digest(&bytes));
                    let running = runtime.slot(name).map(|s| s.current().version.clone());
                    if running.is_some_and(|v| sha256.starts_with(&*v)) {
                        continue;
                    }
                    match runtime.upload(name, bytes).await {
                        Ok(version) => tracing::info!(
                            plugin = name,
                            version,
                            "installed the plugin version published at the origin"
                        ),
                        Err(e) => {
                            tracing::error!(plugin = name, sha256, error = %e, "the plugin version published at the origin does not load here; the configured version keeps serving")
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(plugin = name, error = %e, "could not check the origin for a published version of this plugin; the configured version serves until the feed announces one")
                }
            }
        }
    }

    /// The current bytes of plugin `name` at the origin (`None` if none is
    /// published), checked against the hash the origin states for them.
    async fn fetch_plugin(&self, name: &str) -> Result<Option<Vec<u8>>, FeedError> {
        let path = format!("/plugins/{name}");
        let (status, headers, body) = self.get(&path).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let stated = headers
            .get("x-waypost-plugin-sha256")
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
        Ok(Some(body.to_vec()))
    }
}
