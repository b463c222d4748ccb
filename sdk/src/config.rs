//! Per-site plugin settings from the edge's config
//! (`plugin_config = { key = "value", ... }` on the site).
//!
//! Every plugin of a site sees the site's `plugin_config`; values are
//! strings.

use std::str::FromStr;

use crate::bindings::waypost::edge::config as wit;

/// The value of `key`, if the site sets it.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// The value of `key`, or `default` when unset.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_owned())
}

/// The value of `key` parsed as `T`: `Ok(None)` when unset, an error naming
/// the key when it does not parse.
pub fn parse<T>(key: &str) -> crate::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match get(key) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|err| crate::Error::msg(format!("plugin config `{key}` = {raw:?}: {err}"))),
    }
}
