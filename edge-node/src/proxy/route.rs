//! Routing: which site (and so which origin pool) serves a request, from its
//! host and path.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plugin::PluginSlot;

use crate::upstream::Pool;

pub struct Site {
    hosts: Vec<String>,
    prefix: String,
    pub pool: Arc<Pool>,
    /// The plugin chain, first link first; empty for a plain cache site.
    pub plugins: Vec<Arc<PluginSlot>>,
    pub plugin_config: Arc<HashMap<String, String>>,
}

impl Site {
    pub fn new(hosts: Vec<String>, prefix: String, pool: Arc<Pool>) -> Self {
        Self {
            hosts,
            prefix,
            pool,
            plugins: Vec::new(),
            plugin_config: Arc::default(),
        }
    }

    pub fn with_plugins(
        mut self,
        plugins: Vec<Arc<PluginSlot>>,
        config: HashMap<String, String>,
    ) -> Self {
        self.plugins = plugins;
        self.plugin_config = Arc::new(config);
        self
    }

    fn host_matches(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| {
            h == "*"
                || h == host
                || h.strip_prefix("*.").is_some_and(|suffix| {
                    host.len() > suffix.len() + 1
                        && host.ends_with(suffix)
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                })
        })
    }
}

/// The sites in config order; the most specific match wins.
pub struct Router {
    sites: Vec<Site>,
}

impl Router {
    pub fn new(sites: Vec<Site>) -> Self {
        Self { sites }
    }

    /// The site for `host` (lower-case, no port) and `path`: among sites
    /// whose host list matches, the longest path prefix; an exact host beats
    /// a wildcard at equal prefix length.
    pub fn route(&self, host: &str, path: &str) -> Option<&Site> {
        self.sites
            .iter()
            .filter(|s| s.host_matches(host) && path.starts_with(&s.prefix))
            .max_by_key(|s| (s.prefix.len(), s.hosts.iter().any(|h| h == host)))
    }
}

/// The request's host, lower-cased and without port: the `:authority` of
/// HTTP/2 or absolute-form requests, else the `Host` header.
pub fn request_host(req: &http::request::Parts) -> Option<String> {
    let raw = match req.uri.authority() {
        Some(a) => a.host().to_string(),
        None => {
            let h = req.headers.get(http::header::HOST)?.to_str().ok()?;
            let auth: http::uri::Authority = h.parse().ok()?;
            auth.host().to_string()
        }
    };
    Some(raw.trim_end_matches('.').to_ascii_lowercase())
}
