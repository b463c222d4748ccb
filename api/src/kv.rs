//! The KV API (`/kv/{namespace}[/{key}]`) as the origin serves it and the
//! edge's plugins and the CLI call it.

use percent_encoding::utf8_percent_encode;
use serde::{Deserialize, Serialize};

use crate::asset_path::SEGMENT;
use crate::names::{KvKey, Namespace};

/// Most entries one listing returns.
pub const MAX_LIST: usize = 1000;

/// `GET /kv/{namespace}?prefix=P&after=K`: keys in order, with values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub namespace: String,
    pub entries: Vec<Entry>,
    /// More keys match than one listing returns ([`MAX_LIST`] entries or
    /// the origin's byte bound); ask again with `after=<last key>`.
    pub truncated: bool,
}

/// One key of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub value: String,
}

/// `/kv/{namespace}/{key}`, both percent-encoded (a key may hold `/`, `?`
/// or spaces).
pub fn key_path(namespace: &Namespace, key: &KvKey) -> String {
    format!(
        "/kv/{}/{}",
        utf8_percent_encode(namespace.as_str(), SEGMENT),
        utf8_percent_encode(key.as_str(), SEGMENT)
    )
}

/// `/kv/{namespace}?prefix=…[&after=…]`, percent-encoded.
pub fn listing_path(namespace: &Namespace, prefix: &str, after: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("prefix", prefix);
    if let Some(after) = after {
        query.append_pair("after", after);
    }
    format!(
        "/kv/{}?{}",
        utf8_percent_encode(namespace.as_str(), SEGMENT),
        query.finish()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_what_would_change_the_url() {
        let ns = Namespace::parse("sessions").unwrap();
        let key = KvKey::parse("a/b c?d#e%").unwrap();
        assert_eq!(key_path(&ns, &key), "/kv/sessions/a%2Fb%20c%3Fd%23e%25");
        assert_eq!(
            listing_path(&ns, "u&1", Some("u&0")),
            "/kv/sessions?prefix=u%261&after=u%260"
        );
    }
}
