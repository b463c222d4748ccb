//! Request cache directives as RFC 9111 §5.2.1 and §5.4 define them.
//!
//! A request directive the cache does not know must be ignored (§5.2.3):
//! `Cache-Control: foo` or `Pragma: foo` must not change what the cache
//! does, stale-while-revalidate included. And `Pragma: no-cache` speaks
//! only when the request has no `Cache-Control` (§5.4);
//! `http-cache-semantics` honours it even beside one. This module decides
//! which requests the crate needs to see and hands it a copy without the
//! fields that must not count.

use http::header::{CACHE_CONTROL, PRAGMA};
use http::request;

use super::directives::{Directive, parse_request_cache_control};

/// The request directives this cache implements.
const KNOWN: &[&str] = &[
    "max-age",
    "max-stale",
    "min-fresh",
    "no-cache",
    "no-store",
    "no-transform",
    "only-if-cached",
];

/// The request's cache directives that change reuse, or `None` when the
/// request is plain (no field, or only unknown directives), so the stored
/// decision stands as for any other request.
pub fn effective(req: &request::Parts) -> Option<request::Parts> {
    let has_cc = req.headers.contains_key(CACHE_CONTROL);
    let known: Vec<Directive> = parse_request_cache_control(&req.headers)
        .into_iter()
        .filter(|d| KNOWN.contains(&d.name.as_str()))
        .collect();
    let pragma_no_cache = !has_cc
        && req.headers.get_all(PRAGMA).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("no-cache"))
            })
        });
    if known.is_empty() && !pragma_no_cache {
        return None;
    }
    let mut out = req.clone();
    out.headers.remove(CACHE_CONTROL);
    out.headers.remove(PRAGMA);
    let mut text: Vec<String> = known
        .iter()
        .map(|d| match &d.value {
            Some(v) => format!("{}={}", d.name, v),
            None => d.name.clone(),
        })
        .collect();
    if pragma_no_cache {
        text.push("no-cache".into());
    }
    if let Ok(v) = text.join(", ").parse() {
        out.headers.insert(CACHE_CONTROL, v);
    }
    Some(out)
}

/// `Cache-Control: only-if-cached` (§5.2.1.7): the client wants a stored
/// response or a 504, never origin traffic. Honoured whatever the site's
/// `honor_client_cache_control`, since it can only reduce origin load.
pub fn only_if_cached(headers: &http::HeaderMap) -> bool {
    parse_request_cache_control(headers)
        .iter()
        .any(|d| d.name == "only-if-cached")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> request::Parts {
        let mut b = http::Request::builder().uri("/");
        for (k, v) in pairs {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn unknown_directives_leave_the_request_plain() {
        for pairs in [
            &[("cache-control", "foo")][..],
            &[("cache-control", "foo=bar, baz")],
            &[("pragma", "foo")],
            &[("cache-control", "foo"), ("pragma", "no-cache")],
        ] {
            assert!(effective(&req(pairs)).is_none(), "{pairs:?}");
        }
    }

    #[test]
    fn only_if_cached_in_any_case_and_list() {
        assert!(only_if_cached(
            &req(&[("cache-control", "foo, Only-If-Cached")]).headers
        ));
        assert!(!only_if_cached(
            &req(&[("cache-control", "no-cache")]).headers
        ));
    }

    #[test]
    fn known_directives_reach_the_policy_without_the_unknown_ones() {
        let r = effective(&req(&[("cache-control", "foo, Max-Age=0")])).unwrap();
        assert_eq!(r.headers.get(CACHE_CONTROL).unwrap(), "max-age=0");
        let r = effective(&req(&[("pragma", "No-Cache")])).unwrap();
        assert_eq!(r.headers.get(CACHE_CONTROL).unwrap(), "no-cache");
        assert!(r.headers.get(PRAGMA).is_none());
    }
}
