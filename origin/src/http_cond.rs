//! Conditional requests and byte ranges (RFC 9110 §13 and §14), as pure
//! functions of request headers and the asset's validators so they can be
//! tested without sockets.
//!
//! Header values are parsed by the `headers` crate; the `bytes=` range
//! spec by [`service_base::byte_range`], which the edge shares, because
//! `headers` rejects suffix ranges longer than the representation, which
//! RFC 9110 says to clamp.

use std::time::SystemTime;

use headers::{
    ETag, HeaderMapExt, IfMatch, IfModifiedSince, IfNoneMatch, IfRange, IfUnmodifiedSince,
    LastModified,
};
use http::{HeaderMap, Method};
use service_base::byte_range::ByteRange;

/// The validators of the current representation of an asset.
#[derive(Debug, Clone)]
pub struct Validators {
    pub etag: ETag,
    pub last_modified: SystemTime,
}

impl Validators {
    /// Validators for content hash `sha256` last modified at unix second
    /// `last_modified`; the ETag is the strong `"<sha256 hex>"`. The state
    /// machine only stores hex hashes and dates up to year 9999; anything
    /// else (a state written before it checked) gets an `invalid-` tag and
    /// the latest representable date, never a panic.
    pub fn new(sha256: &str, last_modified: u64) -> Self {
        let etag = format!("\"{sha256}\"").parse().unwrap_or_else(|_| {
            let safe: String = sha256.chars().filter(char::is_ascii_alphanumeric).collect();
            format!("\"invalid-{safe}\"")
                .parse()
                .expect("ASCII letters and digits form an entity tag")
        });
        Self {
            etag,
            last_modified: unix_time(last_modified),
        }
    }
}

/// Unix second `secs` as a time `httpdate` can format (it panics past
/// year 9999).
pub fn unix_time(secs: u64) -> SystemTime {
    const LAST_HTTP_DATE: u64 = 253_402_300_799;
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs.min(LAST_HTTP_DATE))
}

/// What the precondition headers decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Carry on with the method.
    Proceed,
    /// 304: the client's copy is current (GET/HEAD only).
    NotModified,
    /// 412: a precondition the client set is false.
    Failed,
}

/// Evaluates If-Match, If-Unmodified-Since, If-None-Match and
/// If-Modified-Since in the order of RFC 9110 §13.2.2. `current` is `None`
/// when the asset does not exist (relevant for PUT with `If-None-Match: *`).
pub fn evaluate(
    headers: &HeaderMap,
    method: &Method,
    current: Option<&Validators>,
) -> Precondition {
    let safe = method == Method::GET || method == Method::HEAD;
    if let Some(if_match) = headers.typed_get::<IfMatch>() {
        let passes = current.is_some_and(|v| if_match.precondition_passes(&v.etag));
        if !passes {
            return Precondition::Failed;
        }
    } else if let Some(since) = headers.typed_get::<IfUnmodifiedSince>()
        && let Some(v) = current
        && !since.precondition_passes(v.last_modified)
    {
        return Precondition::Failed;
    }
    if let Some(if_none_match) = headers.typed_get::<IfNoneMatch>() {
        let passes = current.is_none_or(|v| if_none_match.precondition_passes(&v.etag));
        if !passes {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe
        && let Some(since) = headers.typed_get::<IfModifiedSince>()
        && let Some(v) = current
        && !since.is_modified(v.last_modified)
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Decides the byte range for a GET of a `len`-byte representation.
/// If-Range must match the strong ETag (or the date must not be older than
/// Last-Modified) for the Range to apply. Several ranges are answered with
/// the whole body, which RFC 9110 §14.2 allows.
pub fn select_range(
    headers: &HeaderMap,
    method: &Method,
    current: &Validators,
    len: u64,
) -> ByteRange {
    if method != Method::GET {
        return ByteRange::Full;
    }
    let Some(value) = headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return ByteRange::Full;
    };
    if let Some(if_range) = headers.typed_get::<IfRange>() {
        let last_modified = LastModified::from(current.last_modified);
        if if_range.is_modified(Some(&current.etag), Some(&last_modified)) {
            return ByteRange::Full;
        }
    }
    ByteRange::of(value, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const T0: u64 = 1_700_000_000;

    fn v() -> Validators {
        Validators::new("abc", T0)
    }

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    }

    #[test]
    fn validators_from_bad_stored_values_do_not_panic() {
        let v = Validators::new("a\"b", u64::MAX);
        assert_eq!(v.etag, "\"invalid-ab\"".parse::<ETag>().unwrap());
        let date = httpdate::fmt_http_date(v.last_modified);
        assert!(date.contains("9999"), "{date}");
    }

    #[test]
    fn if_none_match_variants() {
        let get = Method::GET;
        for value in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            let got = evaluate(&h(&[("if-none-match", value)]), &get, Some(&v()));
            assert_eq!(got, Precondition::NotModified, "{value}");
        }
        assert_eq!(
            evaluate(&h(&[("if-none-match", "\"x\"")]), &get, Some(&v())),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&h(&[("if-none-match", "*")]), &Method::PUT, Some(&v())),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&h(&[("if-none-match", "*")]), &Method::PUT, None),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_modified_since() {
        let get = Method::GET;
        let same = h(&[("if-modified-since", &date(T0))]);
        assert_eq!(evaluate(&same, &get, Some(&v())), Precondition::NotModified);
        let older = h(&[("if-modified-since", &date(T0 - 10))]);
        assert_eq!(evaluate(&older, &get, Some(&v())), Precondition::Proceed);
        assert_eq!(
            evaluate(&same, &Method::PUT, Some(&v())),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let headers = h(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &date(T0)),
        ]);
        assert_eq!(
            evaluate(&headers, &Method::GET, Some(&v())),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        let get = Method::GET;
        assert_eq!(
            evaluate(&h(&[("if-match", "\"abc\"")]), &get, Some(&v())),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&h(&[("if-match", "W/\"abc\"")]), &get, Some(&v())),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&h(&[("if-match", "*")]), &get, None),
            Precondition::Failed
        );
        let old = h(&[("if-unmodified-since", &date(T0 - 1))]);
        assert_eq!(evaluate(&old, &get, Some(&v())), Precondition::Failed);
        let ok = h(&[("if-unmodified-since", &date(T0))]);
        assert_eq!(evaluate(&ok, &get, Some(&v())), Precondition::Proceed);
    }

    #[test]
    fn range_forms() {
        use ByteRange::*;
        let cases = [
            ("bytes=0-9", Partial { start: 0, end: 9 }),
            ("bytes=90-200", Partial { start: 90, end: 99 }),
            ("bytes=95-", Partial { start: 95, end: 99 }),
            ("bytes=-10", Partial { start: 90, end: 99 }),
            ("bytes=-1000", Partial { start: 0, end: 99 }),
            ("bytes=100-", Unsatisfiable),
            ("bytes=100-200", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=5-1", Full),
            ("bytes=0-1,5-6", Full),
            ("items=0-1", Full),
            ("bytes=+1-2", Full),
            ("bytes=x", Full),
        ];
        for (value, want) in cases {
            let got = select_range(&h(&[("range", value)]), &Method::GET, &v(), 100);
            assert_eq!(got, want, "{value}");
        }
        assert_eq!(
            select_range(&h(&[("range", "bytes=0-1")]), &Method::HEAD, &v(), 100),
            Full
        );
        assert_eq!(
            select_range(&h(&[("range", "bytes=0-1")]), &Method::GET, &v(), 0),
            Unsatisfiable
        );
    }

    #[test]
    fn if_range_needs_current_validator() {
        let ok = h(&[("range", "bytes=0-1"), ("if-range", "\"abc\"")]);
        assert_eq!(
            select_range(&ok, &Method::GET, &v(), 10),
            ByteRange::Partial { start: 0, end: 1 }
        );
        let stale = h(&[("range", "bytes=0-1"), ("if-range", "\"old\"")]);
        assert_eq!(
            select_range(&stale, &Method::GET, &v(), 10),
            ByteRange::Full
        );
        let weak = h(&[("range", "bytes=0-1"), ("if-range", "W/\"abc\"")]);
        assert_eq!(select_range(&weak, &Method::GET, &v(), 10), ByteRange::Full);
    }
}
