//! RFC 9213 targeted cache control (`CDN-Cache-Control` and our own
//! `Waypost-CDN-Cache-Control`).
//!
//! An origin uses a targeted field to give this cache a policy different
//! from the one browsers get in `Cache-Control` (say, an hour at the edge
//! and a minute in the browser). The first targeted field, in the
//! configured order, that is present and parses as an RFC 8941 Dictionary
//! replaces `Cache-Control` *and* `Expires` for this cache's decisions
//! (§2.1); an empty or unparsable field is ignored as a whole, as if absent
//! (§2.2). Rather than teach `http-cache-semantics` a second field, the
//! chosen one is rewritten into an equivalent `Cache-Control` on the copy
//! of the headers the policy reads; clients still receive the origin's
//! fields (unless the site strips the targeted ones on the way out).

use http::header::{HeaderMap, HeaderName};
use sfv::{BareItem, ListEntry, Parser};

/// The default precedence: ours first (an operator can target Waypost
/// alone), then the generic CDN field.
pub const DEFAULT_FIELDS: &[&str] = &["waypost-cdn-cache-control", "cdn-cache-control"];

/// Directives whose argument is delta-seconds: only a non-negative Integer
/// is a valid argument in a targeted field.
const DELTA_DIRECTIVES: &[&str] = &[
    "max-age",
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
];

/// The `Cache-Control` text equivalent to the first valid targeted field
/// in `fields`, or `None` when no targeted field applies (then
/// `Cache-Control` and `Expires` decide as usual).
pub fn effective_cache_control(headers: &HeaderMap, fields: &[HeaderName]) -> Option<String> {
    fields.iter().find_map(|name| parse_field(headers, name))
}

/// One targeted field as `Cache-Control` text; `None` when absent, empty or
/// not a valid Dictionary. Field lines are joined with commas before
/// parsing (RFC 8941 §4.2).
fn parse_field(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut joined = String::new();
    for line in headers.get_all(name) {
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(line.to_str().ok()?);
    }
    if joined.trim().is_empty() {
        return None;
    }
    let dict = Parser::parse_dictionary(joined.as_bytes()).ok()?;
    if dict.is_empty() {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for (key, entry) in dict {
        // Parameters are ignored (§2.2: none are defined); an inner list
        // is not a cache directive value.
        let ListEntry::Item(item) = entry else {
            continue;
        };
        if let Some(text) = directive_text(&key, &item.bare_item) {
            out.push(text);
        }
    }
    Some(out.join(", "))
}

/// Maps one Dictionary member back to a directive (§2.2): `true` is a
/// directive without argument, an Integer a delta-seconds argument, a
/// String or Token a quoted argument (`no-cache="set-cookie"`). A member
/// whose value does not fit its directive is dropped, not the field: the
/// field itself parsed, so the rest of its policy stands.
fn directive_text(key: &str, value: &BareItem) -> Option<String> {
    let delta = DELTA_DIRECTIVES.contains(&key);
    match value {
        BareItem::Boolean(true) if !delta => Some(key.to_string()),
        BareItem::Boolean(_) => None,
        BareItem::Integer(n) if delta => (*n >= 0).then(|| format!("{key}={n}")),
        BareItem::String(s) | BareItem::Token(s) if !delta => Some(format!(
            "{key}=\"{}\"",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<HeaderName> {
        DEFAULT_FIELDS
            .iter()
            .map(|f| HeaderName::from_static(f))
            .collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn cdn_field_becomes_cache_control() {
        let h = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=3600, stale-if-error=60"),
        ]);
        assert_eq!(
            effective_cache_control(&h, &fields()).as_deref(),
            Some("max-age=3600, stale-if-error=60")
        );
    }

    #[test]
    fn precedence_follows_the_configured_order() {
        let h = headers(&[
            ("cdn-cache-control", "max-age=10"),
            ("waypost-cdn-cache-control", "no-store"),
        ]);
        assert_eq!(
            effective_cache_control(&h, &fields()).as_deref(),
            Some("no-store")
        );
        let reversed: Vec<_> = fields().into_iter().rev().collect();
        assert_eq!(
            effective_cache_control(&h, &reversed).as_deref(),
            Some("max-age=10")
        );
    }

    #[test]
    fn invalid_or_empty_field_is_ignored_as_a_whole() {
        for bad in [
            "max-age=\"",
            "Max-Age=10",
            "max-age=10,,",
            "max-age=10 junk",
            "",
        ] {
            let h = headers(&[
                ("waypost-cdn-cache-control", bad),
                ("cdn-cache-control", "max-age=5"),
            ]);
            assert_eq!(
                effective_cache_control(&h, &fields()).as_deref(),
                Some("max-age=5"),
                "{bad:?} should fall through to the next field"
            );
            let h = headers(&[("cdn-cache-control", bad)]);
            assert_eq!(effective_cache_control(&h, &fields()), None, "{bad:?}");
        }
    }

    #[test]
    fn lines_join_and_parameters_are_ignored() {
        let h = headers(&[
            ("cdn-cache-control", "max-age=30;foo=bar"),
            ("cdn-cache-control", "private"),
        ]);
        assert_eq!(
            effective_cache_control(&h, &fields()).as_deref(),
            Some("max-age=30, private")
        );
    }

    #[test]
    fn values_of_the_wrong_type_drop_only_that_directive() {
        let h = headers(&[(
            "cdn-cache-control",
            "max-age=\"60\", s-maxage=-1, no-store=?0, must-revalidate, no-cache=\"set-cookie\"",
        )]);
        assert_eq!(
            effective_cache_control(&h, &fields()).as_deref(),
            Some("must-revalidate, no-cache=\"set-cookie\"")
        );
    }

    #[test]
    fn absent_fields_leave_cache_control_in_charge() {
        let h = headers(&[("cache-control", "max-age=10")]);
        assert_eq!(effective_cache_control(&h, &fields()), None);
    }
}
