//! Requests to origins: what is forwarded, what is added, and what a
//! successful unsafe request invalidates.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, request};

use crate::body::Body;
use crate::cache::{self, CachedObject};
use crate::listen::ConnInfo;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The client's address as this edge saw it, set on every origin request
/// whatever the client sent: `X-Forwarded-For` keeps what clients claim
/// (origins behind other proxies need the chain), so its leftmost entry
/// can be forged; this field cannot (as Cloudflare's `CF-Connecting-IP`).
const CLIENT_IP: HeaderName = HeaderName::from_static(crate::plugin::CLIENT_IP);

/// Conditional and range fields of the client that the cache answers
/// itself; the origin gets the cache's own validators instead.
const ANSWERED_BY_CACHE: &[HeaderName] = &[
    header::RANGE,
    header::IF_RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
];

/// Fields that frame the client's request body. A cache fill never sends
/// a body: forwarding the client's `Content-Length` on it would make the
/// origin wait for bytes that never come, and read the next request on the
/// pooled connection as that body (request smuggling).
const CLIENT_BODY_FRAMING: &[HeaderName] = &[
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::EXPECT,
];

/// The request target in origin form (RFC 9112 §3.2.1): path and query.
/// An absolute-form target with an empty path (`http://h?x=1`) means
/// `/?x=1`; `Uri::path` already reads it so, `PathAndQuery::as_str` does not.
pub fn origin_form(uri: &Uri) -> String {
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

/// `origin_form` as a URI for the upstream request.
fn origin_form_uri(uri: &Uri) -> Uri {
    origin_form(uri)
        .parse()
        .expect("a URI's own path and query form a valid URI")
}

/// Client-sent fields that proxies and frameworks behind the edge trust to
/// rewrite the URL, method or origin they act on. A client could use them
/// to make the origin answer for another URL under this one's cache key,
/// so they never leave the edge (X-Forwarded-Proto and -Host are set by it).
const UNTRUSTED: &[&str] = &[
    "forwarded",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Accept phase: removes what a client must not decide. Every
/// `x-waypost-*` field is the edge's to set (plugins trust them), and the
/// [`UNTRUSTED`] rewriting fields; on every site, with or without plugins.
pub fn drop_untrusted(headers: &mut HeaderMap) {
    let ours: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(waypost_api::headers::PREFIX))
        .cloned()
        .collect();
    for name in ours
        .iter()
        .map(HeaderName::as_str)
        .chain(UNTRUSTED.iter().copied())
    {
        headers.remove(name);
    }
}

/// Turns the request's fields into the ones the origin gets, in place, so
/// that the cache keys variants on exactly what the origin saw (an origin's
/// `Vary: X-Forwarded-Proto` or `Vary: Accept-Encoding` then works): no
/// hop-by-hop fields, `Host` the routed host, the forwarding fields set by
/// the edge, `Accept-Encoding` normalized.
pub fn to_origin(h: &mut HeaderMap, conn: &ConnInfo, host: &str) {
    cache::strip_hop_by_hop(h);
    let peer = &conn.peer_ip;
    let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => {
            let ip = peer.to_str().expect("an IP address is ASCII");
            HeaderValue::from_str(&format!("{prev}, {ip}")).ok()
        }
        None => Some(peer.clone()),
    };
    if let Some(v) = xff {
        h.insert(X_FORWARDED_FOR, v);
    }
    h.insert(CLIENT_IP, peer.clone());
    h.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(X_FORWARDED_HOST, v.clone());
        h.insert(header::HOST, v);
    }
    h.append(header::VIA, HeaderValue::from_static("1.1 waypost"));
    cache::normalize_accept_encoding(h);
    cache::normalize_accept_language(h);
}

/// The origin request for a cache miss or revalidation of `client`: always
/// GET (a HEAD miss fills the cache too), without the client's range and
/// conditionals, with the stored object's validators when revalidating.
pub fn cache_fill(client: &request::Parts, stale: Option<&CachedObject>) -> Request<Body> {
    let mut headers = client.headers.clone();
    for name in ANSWERED_BY_CACHE.iter().chain(CLIENT_BODY_FRAMING) {
        headers.remove(name);
    }
    if let Some(obj) = stale {
        if let Some(etag) = obj.meta.headers.get(header::ETAG) {
            headers.insert(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = obj.meta.headers.get(header::LAST_MODIFIED) {
            headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
        }
    }
    let mut req = Request::new(crate::body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = origin_form_uri(&client.uri);
    *req.headers_mut() = headers;
    req
}

/// The origin request for a request the cache does not handle (unsafe
/// methods, credentials): method, path, fields and body as the client sent
/// them, with the fields [`to_origin`] already set.
pub fn pass(client: request::Parts, body: Body) -> Request<Body> {
    let mut req = Request::new(body);
    *req.uri_mut() = origin_form_uri(&client.uri);
    *req.method_mut() = client.method;
    *req.headers_mut() = client.headers;
    req
}

/// RFC 9111 §4.4: the primary keys a successful unsafe request invalidates:
/// its own URL and same-host `Location` / `Content-Location` targets.
pub fn invalidated_keys(host: &str, path_and_query: &str, response: &HeaderMap) -> Vec<String> {
    let mut keys = vec![cache::primary(host, path_and_query)];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(target) = response.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(uri) = target.parse::<http::Uri>() else {
            continue;
        };
        let same_host = uri.host().is_none_or(|h| h.eq_ignore_ascii_case(host));
        if let (true, Some(pq)) = (same_host, uri.path_and_query())
            && pq.as_str().starts_with('/')
        {
            keys.push(cache::primary(host, pq.as_str()));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_form_of_an_empty_absolute_path_is_slash() {
        let form = |s: &str| origin_form(&s.parse().unwrap());
        assert_eq!(form("http://cdn.test?x=1"), "/?x=1");
        assert_eq!(form("http://cdn.test"), "/");
        assert_eq!(form("/a/b?c=d"), "/a/b?c=d");
        assert_eq!(form("https://cdn.test/a?"), "/a?");
        assert_eq!(form("*"), "*");
    }

    #[test]
    fn location_and_content_location_on_same_host_are_invalidated() {
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, "/items/7".parse().unwrap());
        h.insert(
            header::CONTENT_LOCATION,
            "http://other.test/x".parse().unwrap(),
        );
        let keys = invalidated_keys("a.test", "/items", &h);
        assert_eq!(
            keys,
            vec!["a.test/items".to_string(), "a.test/items/7".to_string()]
        );
    }
}
