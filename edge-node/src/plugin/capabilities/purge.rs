//! `waypost:edge/purge`: plugins purge this edge's cache by URL or
//! surrogate key, as the admin API does.

use super::EdgeCtx;
use super::waypost::edge::purge::Host;

impl Host for EdgeCtx {
    async fn url(&mut self, url: String, soft: bool) -> Result<u32, String> {
        let primary = crate::admin::url_key(&url)?;
        Ok(self.cache.purge_url(&primary, soft).await as u32)
    }

    async fn surrogate_key(&mut self, key: String, soft: bool) -> Result<u32, String> {
        if key.is_empty() {
            return Err("surrogate key must not be empty".into());
        }
        Ok(self.cache.purge_surrogate_key(&key, soft).await as u32)
    }
}
