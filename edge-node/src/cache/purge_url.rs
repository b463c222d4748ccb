//! An absolute URL given to purge (the admin API, a plugin's
//! `waypost:edge/purge`) as the cache's primary key.

use super::key::primary;

/// Why a purge URL names no cache entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPurgeUrl {
    #[error("`{url}` is not a URL: {reason}")]
    NotUrl { url: String, reason: String },
    #[error("`{0}` needs a host, e.g. http://cdn.example.com/path")]
    NoHost(String),
}

/// The primary key of `url`: host lower-cased without a trailing dot, then
/// the path and query as sent.
pub fn url_key(url: &str) -> Result<String, BadPurgeUrl> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| BadPurgeUrl::NotUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let host = uri
        .host()
        .ok_or_else(|| BadPurgeUrl::NoHost(url.to_string()))?;
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(primary(
        &host.trim_end_matches('.').to_ascii_lowercase(),
        pq,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalised_and_bad_urls_named() {
        assert_eq!(
            url_key("http://CDN.Example.com./a?b=1").unwrap(),
            primary("cdn.example.com", "/a?b=1")
        );
        assert_eq!(
            url_key("/relative"),
            Err(BadPurgeUrl::NoHost("/relative".into()))
        );
        assert!(matches!(
            url_key("http://a b/"),
            Err(BadPurgeUrl::NotUrl { .. })
        ));
    }
}
