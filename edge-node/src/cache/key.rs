//! Cache keys. The primary key names the resource (host + path + query); the
//! variant key adds the scheme (an `https` response is never served for
//! `http`, whose origin answer may differ, e.g. a redirect) and the request's
//! values of the headers the stored response listed in `Vary`, so each
//! variant is its own entry. Purges and invalidations name a primary key and
//! so reach both schemes.

use http::{HeaderMap, HeaderName};

/// The primary key: lower-cased host, then the path and query as received.
pub fn primary(host: &str, path_and_query: &str) -> String {
    let mut key = String::with_capacity(host.len() + path_and_query.len());
    key.push_str(host);
    key.push_str(path_and_query);
    key
}

/// The scheme a request arrived with, part of every variant key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The key's marker: none for `http` (the common case stays short),
    /// a line no header name can start (`@`) for `https`.
    fn marker(self) -> &'static str {
        match self {
            Scheme::Http => "",
            Scheme::Https => "\n@https",
        }
    }
}

/// The variant key of a request for `primary` over `scheme`, given the
/// `Vary` names of the stored responses for that resource.
pub fn variant(primary: &str, scheme: Scheme, vary: &[HeaderName], headers: &HeaderMap) -> String {
    let mut key = String::from(primary);
    key.push_str(scheme.marker());
    for name in vary {
        key.push('\n');
        key.push_str(name.as_str());
        // An absent field is its own variant, apart from an empty one.
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_some() {
            key.push('=');
        }
        let mut first = true;
        for v in values {
            for member in members(v.as_bytes()) {
                if !first {
                    key.push_str(", ");
                }
                first = false;
                push_escaped(&mut key, member);
            }
        }
    }
    key
}

/// The members of a field line with the whitespace around them removed and
/// empty ones skipped (RFC 9111 §4.1: a cache may normalise whitespace in
/// selecting fields; RFC 9110 §5.6.1: empty list members do not count), so
/// `a,b`, `a , b` and two lines `a` and `b` select one variant. Commas
/// inside quoted strings do not split. Only whitespace changes, so two
/// values that differ otherwise stay apart.
fn members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in value.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
        .into_iter()
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
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

/// The primary key (resource) a variant key belongs to.
pub fn primary_of(key: &str) -> &str {
    key.split('\n').next().unwrap_or(key)
}

/// The URL path of a primary key, as [`normalized_path`] spells it.
pub fn path_of(primary: &str) -> String {
    primary
        .find('/')
        .map_or_else(String::new, |at| normalized_path(&primary[at..]))
}

/// A URL path without its query, percent-decoded, so `/a%20b` and `/a b`
/// name the same resource. Used by purges that come from the origin's
/// change feed, which knows paths but not the host names clients used.
pub fn normalized_path(path: &str) -> String {
    decoded(without_query(path)).into_owned()
}

fn without_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

fn decoded(path: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(path).decode_utf8_lossy()
}

/// The header names listed in a response's `Vary`, lower-cased and sorted so
/// two spellings of the same list give the same keys. `None` when a member
/// is not a field name: the cache cannot tell what the response varies on,
/// so it must treat it as `Vary: *` (never reused).
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(http::header::VARY) {
        let text = value.to_str().ok()?;
        for member in text.split(',').map(str::trim) {
            if member.is_empty() {
                continue;
            }
            names.push(HeaderName::from_bytes(member.as_bytes()).ok()?);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_keys_ignore_host_query_and_encoding() {
        let key = primary("cdn.example", "/assets/a%20b.js?v=3");
        assert_eq!(path_of(&key), "/assets/a b.js");
        assert_eq!(normalized_path("/assets/a b.js"), path_of(&key));
        assert_eq!(normalized_path("/assets/a%20b.js?v=9"), path_of(&key));
        let variant = format!("{key}\naccept-encoding=gzip");
        assert_eq!(primary_of(&variant), key);
        assert_ne!(normalized_path("/assets/a b"), path_of(&key));
    }

    #[test]
    fn variants_differ_by_vary_values() {
        let names = vec![http::header::ACCEPT_ENCODING];
        let mut gzip = HeaderMap::new();
        gzip.insert(http::header::ACCEPT_ENCODING, "gzip".parse().unwrap());
        let a = variant("h/x", Scheme::Http, &names, &gzip);
        let b = variant("h/x", Scheme::Http, &names, &HeaderMap::new());
        assert_ne!(a, b);
        assert_eq!(primary_of(&a), "h/x");
        assert_eq!(primary_of(&b), "h/x");
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
            variant("h/x", Scheme::Http, &names, &h)
        };
        assert_ne!(with(b"de\xe9"), with(b"de\xe8"), "obs-text bytes differ");
        assert_ne!(with(b"a%E9"), with(b"a\xe9"), "an escape is not its byte");
        assert_ne!(
            with(b""),
            variant("h/x", Scheme::Http, &names, &HeaderMap::new())
        );
    }

    #[test]
    fn whitespace_and_line_splits_select_one_variant() {
        let names = vec![http::header::ACCEPT];
        let with = |lines: &[&str]| {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append(http::header::ACCEPT, l.parse().unwrap());
            }
            variant("h/x", Scheme::Http, &names, &h)
        };
        let want = with(&["text/html, image/png"]);
        assert_eq!(with(&["text/html,image/png"]), want);
        assert_eq!(with(&[" text/html ,\timage/png "]), want);
        assert_eq!(with(&["text/html", "image/png"]), want);
        assert_eq!(with(&["text/html,, image/png,"]), want);
        assert_ne!(with(&["text/html, image/jpeg"]), want);
        assert_ne!(
            with(&["\"a,b\""]),
            with(&["\"a, b\""]),
            "quoted commas stay"
        );
    }

    #[test]
    fn schemes_are_apart_and_both_belong_to_the_resource() {
        let h = HeaderMap::new();
        let http = variant("h/x", Scheme::Http, &[], &h);
        let https = variant("h/x", Scheme::Https, &[], &h);
        assert_ne!(http, https);
        assert_eq!(primary_of(&http), "h/x");
        assert_eq!(primary_of(&https), "h/x");
    }

    #[test]
    fn a_vary_member_that_is_no_field_name_is_unknowable() {
        let mut h = HeaderMap::new();
        h.insert(http::header::VARY, "accept, bad name".parse().unwrap());
        assert_eq!(vary_names(&h), None);
        h.insert(http::header::VARY, "accept, , origin".parse().unwrap());
        assert_eq!(vary_names(&h).unwrap().len(), 2);
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
            .unwrap()
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        assert_eq!(names, vec!["accept", "accept-encoding"]);
    }
}
