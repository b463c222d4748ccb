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
    /// Whether request `Cache-Control`/`Pragma` may force revalidation or
    /// bypass (`honor_client_cache_control`; off by default, as in Varnish
    /// and Fastly, so no client can turn hits into origin traffic).
    pub honor_client_cache_control: bool,
    /// Whether the RFC 9213 targeted fields are removed from responses.
    pub strip_targeted_cache_control: bool,
}

impl Site {
    pub fn new(hosts: Vec<String>, prefix: String, pool: Arc<Pool>) -> Self {
        Self {
            hosts,
            prefix,
            pool,
            plugins: Vec::new(),
            plugin_config: Arc::default(),
            honor_client_cache_control: false,
            strip_targeted_cache_control: false,
        }
    }

    pub fn stripping_targeted_cache_control(mut self, strip: bool) -> Self {
        self.strip_targeted_cache_control = strip;
        self
    }

    pub fn honoring_client_cache_control(mut self, honor: bool) -> Self {
        self.honor_client_cache_control = honor;
        self
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

    /// The site for `host` (lower-case, no port) and normalized `path`:
    /// among sites whose host list matches and whose prefix matches on a
    /// segment boundary, the longest prefix; an exact host beats a wildcard
    /// at equal prefix length.
    pub fn route(&self, host: &str, path: &str) -> Option<&Site> {
        self.sites
            .iter()
            .filter(|s| s.host_matches(host) && super::path::prefix_matches(&s.prefix, path))
            .max_by_key(|s| (s.prefix.len(), s.hosts.iter().any(|h| h == host)))
    }
}

/// The request's host, lower-cased and without port: the `:authority` of
/// HTTP/2 or absolute-form requests, else the `Host` header.
pub fn request_host(req: &http::request::Parts) -> Option<String> {
    let host = match req.uri.authority() {
        Some(a) => a.host(),
        None => host_without_port(req.headers.get(http::header::HOST)?.to_str().ok()?)?,
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return None;
    }
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase()
    } else {
        host.to_string()
    })
}

/// The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`),
/// without allocating; `None` when it is not a valid authority.
fn host_without_port(value: &str) -> Option<&str> {
    let host = if value.starts_with('[') {
        &value[..=value.find(']')?]
    } else {
        value.rsplit_once(':').map_or(value, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                value
            }
        })
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    valid.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::host_without_port;

    #[test]
    fn host_header_forms() {
        assert_eq!(host_without_port("cdn.test"), Some("cdn.test"));
        assert_eq!(host_without_port("cdn.test:8080"), Some("cdn.test"));
        assert_eq!(host_without_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_without_port("bad host"), None);
        assert_eq!(host_without_port(""), None);
    }
}
