//! `waypost:edge/config`: per-site values (`plugin_config` in the site's
//! config), read-only to plugins.

use super::EdgeCtx;
use super::waypost::edge::config::Host;

impl Host for EdgeCtx {
    async fn get(&mut self, key: String) -> Option<String> {
        self.site_config.get(&key).cloned()
    }
}
