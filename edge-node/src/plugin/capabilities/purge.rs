//! `waypost:edge/purge`: plugins purge this edge's cache by URL or
//! surrogate key, as the admin API does.

use super::EdgeCtx;
use super::waypost::edge::purge::Host;

impl EdgeCtx {
    fn may_purge(&self) -> Result<(), String> {
        match self.grants.refuse_purge(&self.plugin) {
            Some(reason) => {
                tracing::warn!(plugin = %self.plugin, version = %self.version, "{reason}");
                Err(reason)
            }
            None => Ok(()),
        }
    }
}

impl Host for EdgeCtx {
    async fn url(&mut self, url: String, soft: bool) -> Result<u32, String> {
        self.may_purge()?;
        let primary = crate::cache::url_key(&url).map_err(|e| e.to_string())?;
        Ok(self.cache.purge_url(&primary, soft).await as u32)
    }

    async fn surrogate_key(&mut self, key: String, soft: bool) -> Result<u32, String> {
        self.may_purge()?;
        if key.is_empty() {
            return Err("surrogate key must not be empty".into());
        }
        Ok(self.cache.purge_surrogate_key(&key, soft).await as u32)
    }
}
