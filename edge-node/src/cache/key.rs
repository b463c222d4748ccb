//! Cache keys. The primary key names the resource (host + path + query); the
//! variant key adds the request's values of the headers the stored response
//! listed in `Vary`, so each variant is its own entry.

use http::{HeaderMap, HeaderName};

/// The primary key: lower-cased host, then the path and query as received.
pub fn primary(host: &str, path_and_query: &str) -> String {
    let mut key = String::with_capacity(host.len() + path_and_query.len());
    key.push_str(host);
    key.push_str(path_and_query);
    key
}

/// The variant key of a request for `primary`, given the `Vary` names of the
/// stored responses for that resource.
pub fn variant(primary: &str, vary: &[HeaderName], headers: &HeaderMap) -> String {
    if vary.is_empty() {
        return primary.to_string();
    }
    let mut key = String::from(primary);
    for name in vary {
        key.push('\n');
        key.push_str(name.as_str());
        // An absent field is its own variant, apart from an empty one.
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_some() {
            key.push('=');
        }
        for (i, v) in values.enumerate() {
            if i > 0 {
                key.push_str(", ");
            }
            push_escaped(&mut key, v.as_bytes());
        }
    }
    key
}

/// Appends a field value byte for byte: visible ASCII as is, anything else
/// (obs-text, `%`) as `%XX`, so distinct values never share a key.
fn push_escaped(key: &mut String, value: &[u8]) {
    for &b in value {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            key.push(char::from(b));
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Whether `variant_key` belongs to the resource `primary`.
pub fn is_variant_of(variant_key: &str, primary: &str) -> bool {
    variant_key
        .strip_prefix(primary)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('\n'))
}

/// Whether the object stored under `key` is a copy of URL path `path` on
/// any host, whatever its query string. Both sides are compared
/// percent-decoded, so `/a%20b` and `/a b` name the same resource. Used by
/// purges that come from the origin's change feed, which knows paths but not
/// the host names clients used.
pub fn path_matches(key: &str, path: &str) -> bool {
    let primary = key.split('\n').next().unwrap_or(key);
    let Some(at) = primary.find('/') else {
        return false;
    };
    let stored = &primary[at..];
    decoded(without_query(stored)) == decoded(without_query(path))
}

fn without_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

fn decoded(path: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(path).decode_utf8_lossy()
}

/// The header names listed in a response's `Vary`, lower-cased and sorted so
/// two spellings of the same list give the same keys.
pub fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_matches_any_host_query_and_encoding() {
        let key = primary("cdn.example", "/assets/a%20b.js?v=3");
        assert!(path_matches(&key, "/assets/a b.js"));
        assert!(path_matches(&key, "/assets/a%20b.js?v=9"));
        let variant = format!("{key}\naccept-encoding=gzip");
        assert!(path_matches(&variant, "/assets/a b.js"));
        assert!(!path_matches(&key, "/assets/a b"));
        assert!(!path_matches(&key, "/assets/a b.js/x"));
        assert!(!path_matches(
            &primary("cdn.example", "/other"),
            "/assets/a b.js"
        ));
    }

    #[test]
    fn variants_differ_by_vary_values() {
        let names = vec![http::header::ACCEPT_ENCODING];
        let mut gzip = HeaderMap::new();
        gzip.insert(http::header::ACCEPT_ENCODING, "gzip".parse().unwrap());
        let a = variant("h/x", &names, &gzip);
        let b = variant("h/x", &names, &HeaderMap::new());
        assert_ne!(a, b);
        assert!(is_variant_of(&a, "h/x") && is_variant_of(&b, "h/x"));
        assert!(!is_variant_of("h/xy", "h/x"));
    }

    #[test]
    fn variant_keys_keep_every_byte_and_absent_apart_from_empty() {
        let names = vec![http::header::ACCEPT_LANGUAGE];
        let with = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::ACCEPT_LANGUAGE,
                http::HeaderValue::from_bytes(v).unwrap(),
            );
            variant("h/x", &names, &h)
        };
        assert_ne!(with(b"de\xe9"), with(b"de\xe8"), "obs-text bytes differ");
        assert_ne!(with(b"a%E9"), with(b"a\xe9"), "an escape is not its byte");
        assert_ne!(with(b""), variant("h/x", &names, &HeaderMap::new()));
    }

    #[test]
    fn vary_list_is_normalized() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::VARY,
            "Accept-Encoding, accept".parse().unwrap(),
        );
        h.append(http::header::VARY, "accept-encoding".parse().unwrap());
        let names: Vec<_> = vary_names(&h)
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        assert_eq!(names, vec!["accept", "accept-encoding"]);
    }
}
