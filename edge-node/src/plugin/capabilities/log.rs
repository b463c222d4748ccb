//! `waypost:edge/log`: structured plugin logs into the edge's JSON log,
//! tagged with the plugin's name and version.

use super::EdgeCtx;
use super::waypost::edge::log::{Host, Level};

impl Host for EdgeCtx {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let fields: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let fields = fields.join(" ");
        let (plugin, version) = (&*self.plugin, &*self.version);
        match level {
            Level::Trace => {
                tracing::trace!(target: "waypost::plugin", plugin, version, fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "waypost::plugin", plugin, version, fields, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "waypost::plugin", plugin, version, fields, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "waypost::plugin", plugin, version, fields, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "waypost::plugin", plugin, version, fields, "{message}")
            }
        }
    }
}
