//! Strict reading of the response fields that decide freshness, before
//! `http-cache-semantics` sees them.
//!
//! That crate is lenient where RFC 9111 asks caches to be strict: an invalid
//! `max-age` becomes "no max-age" instead of "stale", a list-valued `Age` is
//! ignored instead of using its first member, obsolete date formats in
//! `Expires` are not understood, and values beyond 2^31 are not capped. This
//! module rewrites a copy of the headers into the unambiguous form the crate
//! reads correctly; the headers sent to clients stay as the origin wrote them.

use std::time::Duration;

use http::header::{
    AGE, CACHE_CONTROL, DATE, EXPIRES, HeaderMap, HeaderName, HeaderValue, LAST_MODIFIED, PRAGMA,
    VARY,
};

use super::{dates, targeted};

/// RFC 9111 §1.2.2: delta-seconds that do not fit are taken as 2^31.
const DELTA_SECONDS_CAP: u64 = 2_147_483_648;

/// Directives whose argument is delta-seconds.
const DELTA_DIRECTIVES: &[&str] = &[
    "max-age",
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
    "min-fresh",
    "max-stale",
];

/// One parsed `Cache-Control` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub value: Option<String>,
}

/// Parses every `Cache-Control` field line into lower-cased directives.
/// Returns `None` when a delta-seconds directive has an invalid argument or a
/// directive repeats with a different argument: RFC 9111 §4.2.1 asks caches
/// to treat such responses as stale.
pub fn parse_cache_control(headers: &HeaderMap) -> Option<Vec<Directive>> {
    let mut out: Vec<Directive> = Vec::new();
    for line in headers.get_all(CACHE_CONTROL) {
        let text = line.to_str().ok()?;
        for part in split_outside_quotes(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
                None => (part, None),
            };
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return None;
            }
            let name = name.to_ascii_lowercase();
            let value = if DELTA_DIRECTIVES.contains(&name.as_str()) {
                match value {
                    Some(v) => Some(delta_seconds(&v)?.to_string()),
                    None if name == "max-stale" => None,
                    None => return None,
                }
            } else {
                value
            };
            if let Some(prev) = out.iter().find(|d| d.name == name) {
                if prev.value != value {
                    return None;
                }
                continue;
            }
            out.push(Directive { name, value });
        }
    }
    Some(out)
}

/// Request directives, leniently: a malformed directive is skipped (it is
/// one the cache does not understand, RFC 9111 §5.2.3), the rest count; the
/// first of a repeated directive wins.
pub fn parse_request_cache_control(headers: &HeaderMap) -> Vec<Directive> {
    let mut out: Vec<Directive> = Vec::new();
    for line in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = line.to_str() else { continue };
        for part in split_outside_quotes(text) {
            let part = part.trim();
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => match unquote(v.trim()) {
                    Some(v) => (n.trim(), Some(v)),
                    None => continue,
                },
                None => (part, None),
            };
            if name.is_empty() || !name.bytes().all(is_tchar) {
                continue;
            }
            let name = name.to_ascii_lowercase();
            let value = if DELTA_DIRECTIVES.contains(&name.as_str()) {
                match value.as_deref().map(delta_seconds) {
                    Some(Some(n)) => Some(n.to_string()),
                    None if name == "max-stale" => None,
                    _ => continue,
                }
            } else {
                value
            };
            if !out.iter().any(|d| d.name == name) {
                out.push(Directive { name, value });
            }
        }
    }
    out
}

fn delta_seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .unwrap_or(DELTA_SECONDS_CAP)
            .min(DELTA_SECONDS_CAP),
    )
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn unquote(v: &str) -> Option<String> {
    match v.strip_prefix('"') {
        None => Some(v.to_string()),
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.push(chars.next()?);
                } else {
                    out.push(c);
                }
            }
            Some(out)
        }
    }
}

pub(super) fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// What the cache needs beyond the crate's verdict.
#[derive(Debug, Clone, Default)]
pub struct StaleRules {
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Option<Duration>,
    /// must-revalidate, proxy-revalidate, s-maxage or no-cache: never serve
    /// this response stale, whatever the other directives say.
    pub forbids_stale: bool,
}

/// The normalized view of a response's caching fields.
pub struct Normalized {
    /// Copy of the headers for `http-cache-semantics`.
    pub for_policy: HeaderMap,
    pub stale: StaleRules,
    /// `Vary: *` in any spelling, or an unreadable Vary: never reusable.
    pub vary_star: bool,
}

/// Builds the strict copy of `headers` described in the module doc.
/// `targeted` lists the RFC 9213 fields this cache obeys, first first: a
/// valid one stands in for `Cache-Control` and `Expires` (and `Pragma`,
/// which only speaks when `Cache-Control` is absent).
pub fn normalize(headers: &HeaderMap, targeted: &[HeaderName]) -> Normalized {
    let targeted_cc = targeted::effective_cache_control(headers, targeted);
    let retargeted;
    let headers = match targeted_cc {
        Some(cc) => {
            let mut h = headers.clone();
            h.remove(CACHE_CONTROL);
            h.remove(EXPIRES);
            h.remove(PRAGMA);
            if let Ok(v) = HeaderValue::from_str(&cc)
                && !cc.is_empty()
            {
                h.insert(CACHE_CONTROL, v);
            }
            retargeted = h;
            &retargeted
        }
        None => headers,
    };
    let mut h = headers.clone();
    let mut stale = StaleRules::default();
    match parse_cache_control(headers) {
        Some(dirs) => {
            let text = dirs
                .iter()
                .map(|d| match &d.value {
                    Some(v) => format!("{}={}", d.name, v),
                    None => d.name.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            h.remove(CACHE_CONTROL);
            if let Ok(v) = HeaderValue::from_str(&text) {
                h.insert(CACHE_CONTROL, v);
            }
            let secs = |name: &str| {
                dirs.iter()
                    .find(|d| d.name == name)
                    .and_then(|d| d.value.as_deref())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let has = |name: &str| dirs.iter().any(|d| d.name == name);
            stale.stale_while_revalidate =
                Duration::from_secs(secs("stale-while-revalidate").unwrap_or(0));
            stale.stale_if_error = secs("stale-if-error").map(Duration::from_secs);
            stale.forbids_stale = has("must-revalidate")
                || has("proxy-revalidate")
                || has("s-maxage")
                || has("no-cache");
        }
        None => {
            h.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("max-age=0, must-revalidate"),
            );
            stale.forbids_stale = true;
        }
    }
    if !headers.contains_key(CACHE_CONTROL) && has_pragma_no_cache(headers) {
        stale.forbids_stale = true;
    }
    normalize_age(&mut h);
    normalize_expires(&mut h);
    normalize_date(&mut h, DATE);
    normalize_date(&mut h, LAST_MODIFIED);
    let vary_star = headers.get_all(VARY).iter().any(|v| match v.to_str() {
        Ok(s) => s.split(',').any(|m| m.trim() == "*"),
        Err(_) => true,
    });
    Normalized {
        for_policy: h,
        stale,
        vary_star,
    }
}

fn has_pragma_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(PRAGMA).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("no-cache"))
    })
}

/// RFC 9111 §5.1: use the first member of a list-valued Age; ignore an
/// invalid one; cap overflow at 2^31.
fn normalize_age(h: &mut HeaderMap) {
    let first = h
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.split(',').next())
        .map(str::trim)
        .and_then(delta_seconds);
    h.remove(AGE);
    if let Some(age) = first {
        h.insert(AGE, HeaderValue::from(age));
    }
}

/// RFC 9111 §5.3: an invalid Expires (or several) means "already expired";
/// valid obsolete formats are rewritten as IMF-fixdate for the crate.
fn normalize_expires(h: &mut HeaderMap) {
    let values: Vec<_> = h.get_all(EXPIRES).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    let parsed = match values.as_slice() {
        [one] => one.to_str().ok().and_then(dates::parse),
        _ => None,
    };
    let text = match parsed {
        Some(t) => httpdate::fmt_http_date(t),
        None => httpdate::fmt_http_date(std::time::UNIX_EPOCH),
    };
    h.remove(EXPIRES);
    h.insert(
        EXPIRES,
        HeaderValue::from_str(&text).expect("http dates are valid header values"),
    );
}

/// `Date` and `Last-Modified` in any form recipients must accept, as the
/// IMF-fixdate the crate reads; an unreadable one is dropped (no `Date`:
/// the response time stands in; no `Last-Modified`: no heuristic).
fn normalize_date(h: &mut HeaderMap, name: HeaderName) {
    let Some(v) = h.get(&name) else {
        return;
    };
    let fixed = v.to_str().ok().and_then(dates::to_imf_fixdate);
    h.remove(&name);
    if let Some(text) = fixed {
        h.insert(
            name,
            HeaderValue::from_str(&text).expect("http dates are valid header values"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize_plain(h: &HeaderMap) -> Normalized {
        normalize(h, &[])
    }

    fn cdn() -> Vec<HeaderName> {
        targeted::DEFAULT_FIELDS
            .iter()
            .map(|f| HeaderName::from_static(f))
            .collect()
    }

    #[test]
    fn targeted_field_replaces_cache_control_and_expires() {
        let h = headers(&[
            ("cache-control", "no-store"),
            ("expires", "0"),
            (
                "cdn-cache-control",
                "max-age=600, stale-while-revalidate=30",
            ),
        ]);
        let n = normalize(&h, &cdn());
        assert_eq!(
            n.for_policy.get(CACHE_CONTROL).unwrap(),
            "max-age=600, stale-while-revalidate=30"
        );
        assert!(n.for_policy.get(EXPIRES).is_none());
        assert_eq!(n.stale.stale_while_revalidate, Duration::from_secs(30));
        // Without targeting, the same response is not storable.
        let n = normalize(&h, &[]);
        assert_eq!(n.for_policy.get(CACHE_CONTROL).unwrap(), "no-store");
    }

    #[test]
    fn invalid_targeted_field_falls_back_to_cache_control() {
        let h = headers(&[
            ("cache-control", "max-age=5"),
            ("expires", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("cdn-cache-control", "max-age=\"600"),
        ]);
        let n = normalize(&h, &cdn());
        assert_eq!(n.for_policy.get(CACHE_CONTROL).unwrap(), "max-age=5");
        assert!(n.for_policy.get(EXPIRES).is_some());
    }

    #[test]
    fn targeted_no_cache_forbids_stale() {
        let h = headers(&[
            ("cache-control", "max-age=600, stale-if-error=600"),
            ("cdn-cache-control", "no-cache"),
        ]);
        let n = normalize(&h, &cdn());
        assert!(n.stale.forbids_stale);
    }

    #[test]
    fn date_and_last_modified_become_imf_fixdate() {
        let n = normalize_plain(&headers(&[
            ("date", "sun nov  6 08:49:37 1994"),
            ("last-modified", "Saturday, 05-Nov-94 08:49:37 GMT"),
        ]));
        assert_eq!(
            n.for_policy.get(DATE).unwrap(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            n.for_policy.get(LAST_MODIFIED).unwrap(),
            "Sat, 05 Nov 1994 08:49:37 GMT"
        );
        let n = normalize_plain(&headers(&[("last-modified", "yesterday")]));
        assert!(n.for_policy.get(LAST_MODIFIED).is_none());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn invalid_max_age_is_stale() {
        for bad in [
            "max-age=abc",
            "max-age=-1",
            "max-age=1.5",
            "max-age",
            "max-age=10, max-age=20",
        ] {
            let n = normalize_plain(&headers(&[("cache-control", bad)]));
            assert_eq!(
                n.for_policy.get(CACHE_CONTROL).unwrap(),
                "max-age=0, must-revalidate",
                "{bad}"
            );
        }
    }

    #[test]
    fn quoted_and_huge_values() {
        let n = normalize_plain(&headers(&[(
            "cache-control",
            "max-age=\"60\", s-maxage=99999999999999999999",
        )]));
        assert_eq!(
            n.for_policy.get(CACHE_CONTROL).unwrap(),
            "max-age=60, s-maxage=2147483648"
        );
        assert!(n.stale.forbids_stale, "s-maxage implies proxy-revalidate");
    }

    #[test]
    fn directive_names_are_case_insensitive_and_lists_merge() {
        let n = normalize_plain(&headers(&[
            ("cache-control", "Max-Age=30"),
            (
                "cache-control",
                "stale-while-revalidate=5, stale-if-error=60",
            ),
        ]));
        assert_eq!(
            n.for_policy.get(CACHE_CONTROL).unwrap(),
            "max-age=30, stale-while-revalidate=5, stale-if-error=60"
        );
        assert_eq!(n.stale.stale_while_revalidate, Duration::from_secs(5));
        assert_eq!(n.stale.stale_if_error, Some(Duration::from_secs(60)));
        assert!(!n.stale.forbids_stale);
    }

    #[test]
    fn age_first_member_and_invalid() {
        let n = normalize_plain(&headers(&[("age", "10, 20")]));
        assert_eq!(n.for_policy.get(AGE).unwrap(), "10");
        let n = normalize_plain(&headers(&[("age", "-5")]));
        assert!(n.for_policy.get(AGE).is_none());
    }

    #[test]
    fn expires_invalid_and_obsolete_formats() {
        let n = normalize_plain(&headers(&[("expires", "0")]));
        assert_eq!(
            n.for_policy.get(EXPIRES).unwrap(),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let n = normalize_plain(&headers(&[("expires", "Sunday, 06-Nov-94 08:49:37 GMT")]));
        assert_eq!(
            n.for_policy.get(EXPIRES).unwrap(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        let n = normalize_plain(&headers(&[("expires", "sun nov  6 08:49:37 1994")]));
        assert_eq!(
            n.for_policy.get(EXPIRES).unwrap(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn vary_star_in_any_spelling() {
        for v in ["*", " * ", "Accept-Encoding, *"] {
            assert!(normalize_plain(&headers(&[("vary", v)])).vary_star, "{v}");
        }
        assert!(!normalize_plain(&headers(&[("vary", "accept-encoding")])).vary_star);
    }
}
