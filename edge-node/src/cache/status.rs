//! Which status codes may be stored (RFC 9111 §3, §4.2.2, §5.2.2.3).
//!
//! `http-cache-semantics` stores only the fourteen statuses it lists as
//! understood, so a 500 or 503 with `max-age` (an origin asking the edge
//! to absorb an outage), a 400, or an extension status like 299 or 599
//! would never be stored, although §3 allows any final status with
//! explicit freshness or `public`. The crate's other rules are right for
//! those statuses as long as they are not heuristically cacheable, so such
//! a response is shown to the crate as a 307 (understood, not
//! heuristically cacheable): storable with explicit freshness or `public`,
//! never on heuristics alone. Clients always get the real status.
//!
//! `must-understand` (§5.2.2.3) turns this around: the cache may store the
//! response only if it understands the status, and then ignores `no-store`
//! (which the origin sent for caches that do not).

use http::StatusCode;
use http::header::{CACHE_CONTROL, HeaderMap, HeaderValue};

use http::header::HeaderName;

use super::directives::{Normalized, normalize, parse_cache_control};

/// The normalized headers and the status `http-cache-semantics` should see
/// for a response (the one place that combines [`normalize`] and
/// [`for_policy`], so storing, revalidating and rebuilding a stored
/// policy agree). A `None` status: never store.
pub fn policy_view(
    status: StatusCode,
    headers: &HeaderMap,
    targeted: &[HeaderName],
) -> (Normalized, Option<StatusCode>) {
    let mut normalized = normalize(headers, targeted);
    let status = for_policy(status, &mut normalized.for_policy);
    (normalized, status)
}

/// Statuses the crate stores under their own name.
const CRATE_UNDERSTOOD: &[u16] = &[
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// The stand-in for a status the crate does not know: understood, and not
/// heuristically cacheable.
const STAND_IN: StatusCode = StatusCode::TEMPORARY_REDIRECT;

/// Final statuses defined by RFC 9110 whose caching requirements this cache
/// implements: every one except 206 (partial content is not stored) and
/// 304 (a validation answer, never a stored response).
fn understood(status: u16) -> bool {
    matches!(status,
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505)
}

/// The status to show `http-cache-semantics` for a response, after applying
/// `must-understand` to `for_policy` (the normalized copy the crate reads).
/// `None`: never store.
pub fn for_policy(status: StatusCode, for_policy: &mut HeaderMap) -> Option<StatusCode> {
    let code = status.as_u16();
    if !(200..=599).contains(&code) || code == 206 || code == 304 {
        return None;
    }
    let dirs = parse_cache_control(for_policy).unwrap_or_default();
    if dirs.iter().any(|d| d.name == "must-understand") {
        if !understood(code) {
            return None;
        }
        let kept: Vec<String> = dirs
            .iter()
            .filter(|d| d.name != "no-store")
            .map(|d| match &d.value {
                Some(v) => format!("{}={}", d.name, v),
                None => d.name.clone(),
            })
            .collect();
        for_policy.remove(CACHE_CONTROL);
        if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
            for_policy.insert(CACHE_CONTROL, v);
        }
    }
    Some(if CRATE_UNDERSTOOD.contains(&code) {
        status
    } else {
        STAND_IN
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, v.parse().unwrap());
        h
    }

    fn status(n: u16) -> StatusCode {
        StatusCode::from_u16(n).unwrap()
    }

    #[test]
    fn statuses_the_crate_knows_pass_through() {
        for n in [200, 404, 410, 501] {
            assert_eq!(for_policy(status(n), &mut cc("max-age=5")), Some(status(n)));
        }
    }

    #[test]
    fn other_final_statuses_get_a_non_heuristic_stand_in() {
        for n in [299, 400, 499, 500, 502, 503, 504, 599] {
            assert_eq!(for_policy(status(n), &mut cc("max-age=5")), Some(STAND_IN));
        }
    }

    #[test]
    fn partial_validation_and_interim_are_never_stored() {
        for n in [100, 103, 206, 304] {
            assert_eq!(for_policy(status(n), &mut cc("max-age=5")), None, "{n}");
        }
    }

    #[test]
    fn must_understand_drops_no_store_for_understood_statuses_only() {
        let mut h = cc("must-understand, no-store, max-age=60");
        assert_eq!(for_policy(status(200), &mut h), Some(status(200)));
        assert_eq!(h.get(CACHE_CONTROL).unwrap(), "must-understand, max-age=60");

        let mut h = cc("must-understand, no-store, max-age=60");
        assert_eq!(for_policy(status(299), &mut h), None);
        let mut h = cc("must-understand, max-age=60");
        assert_eq!(for_policy(status(555), &mut h), None);
    }

    #[test]
    fn no_store_without_must_understand_stays() {
        let mut h = cc("no-store, max-age=60");
        for_policy(status(200), &mut h);
        assert_eq!(h.get(CACHE_CONTROL).unwrap(), "no-store, max-age=60");
    }
}
