//! Preconditions decided where the write is applied: `If-Match`,
//! `If-None-Match` and `If-Unmodified-Since` travel in the command and are
//! evaluated by the state machine against the version current when the
//! command commits, so they are compare-and-set. Checked by a route
//! against its local copy (possibly stale, and racing other writers), two
//! concurrent create-only `PUT`s (`If-None-Match: *`) could both succeed.
//!
//! The header values are kept as the client sent them and evaluated with
//! [`crate::http_cond::evaluate`], the same RFC 9110 rules a GET uses; a
//! pure function of the values and the state, so every replica decides
//! alike.

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::validate::{InvalidCommand, MAX_HEADER_VALUE};
use crate::http_cond::{self, Precondition, Validators};

/// The precondition headers of one write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_none_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_unmodified_since: Option<String>,
}

impl Conditions {
    /// The precondition headers in `headers` (`None` without any). Dates
    /// are taken only when `dates`: a KV value has no modification time.
    /// A value that is not visible ASCII is left out, as `headers` ignores
    /// one it cannot parse.
    pub fn from_headers(headers: &HeaderMap, dates: bool) -> Option<Self> {
        let get = |name: HeaderName| -> Option<String> {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let conditions = Self {
            if_match: get(header::IF_MATCH),
            if_none_match: get(header::IF_NONE_MATCH),
            if_unmodified_since: dates.then(|| get(header::IF_UNMODIFIED_SINCE)).flatten(),
        };
        (conditions != Self::default()).then_some(conditions)
    }

    /// Whether a write may proceed given the current version (`None`: the
    /// key does not exist).
    pub fn hold(&self, current: Option<&Validators>) -> bool {
        let mut headers = HeaderMap::new();
        let pairs = [
            (header::IF_MATCH, &self.if_match),
            (header::IF_NONE_MATCH, &self.if_none_match),
            (header::IF_UNMODIFIED_SINCE, &self.if_unmodified_since),
        ];
        for (name, value) in pairs {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        http_cond::evaluate(&headers, &Method::PUT, current) == Precondition::Proceed
    }

    /// Bounded header values, like every other string in a command.
    pub fn check(&self) -> Result<(), InvalidCommand> {
        let values = [
            ("if_match", &self.if_match),
            ("if_none_match", &self.if_none_match),
            ("if_unmodified_since", &self.if_unmodified_since),
        ];
        for (field, value) in values {
            if let Some(value) = value
                && (value.len() > MAX_HEADER_VALUE || HeaderValue::from_str(value).is_err())
            {
                return Err(InvalidCommand::HeaderValue { field });
            }
        }
        Ok(())
    }
}

/// The entity tag of a KV value: its SHA-256 in hex, as `GET` sends it.
pub fn kv_etag(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The validators a KV value is compared with (no modification time).
pub fn kv_validators(value: &str) -> Validators {
    Validators::new(&kv_etag(value), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(if_match: Option<&str>, if_none_match: Option<&str>) -> Conditions {
        Conditions {
            if_match: if_match.map(str::to_string),
            if_none_match: if_none_match.map(str::to_string),
            if_unmodified_since: None,
        }
    }

    #[test]
    fn create_only_and_compare_and_set() {
        let current = Validators::new("abc", 10);
        let create = cond(None, Some("*"));
        assert!(create.hold(None));
        assert!(!create.hold(Some(&current)));
        let cas = cond(Some("\"abc\""), None);
        assert!(cas.hold(Some(&current)));
        assert!(!cas.hold(Some(&Validators::new("def", 10))));
        assert!(!cas.hold(None));
        let weak = cond(Some("W/\"abc\""), None);
        assert!(!weak.hold(Some(&current)), "If-Match compares strongly");
    }

    #[test]
    fn read_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(Conditions::from_headers(&h, true), None);
        h.append(header::IF_MATCH, HeaderValue::from_static("\"a\""));
        h.append(header::IF_MATCH, HeaderValue::from_static("\"b\""));
        h.append(
            header::IF_UNMODIFIED_SINCE,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        let c = Conditions::from_headers(&h, false).unwrap();
        assert_eq!(c.if_match.as_deref(), Some("\"a\", \"b\""));
        assert_eq!(c.if_unmodified_since, None);
        assert!(c.hold(Some(&Validators::new("b", 0))));
    }
}
