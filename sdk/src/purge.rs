//! Purging the edge's cache.
//!
//! A hard purge removes the objects; a soft purge marks them stale, so
//! they are revalidated with the origin (and may still be served stale if
//! the origin is down).

use crate::CapabilityError;
use crate::bindings::waypost::edge::purge as wit;

/// Purges every cached variant of the absolute URL `url`; returns how many
/// objects were purged.
pub fn url(url: &str) -> Result<u32, CapabilityError> {
    wit::url(url, false).map_err(|m| CapabilityError::new("purge", m))
}

/// Marks every cached variant of `url` stale.
pub fn url_soft(url: &str) -> Result<u32, CapabilityError> {
    wit::url(url, true).map_err(|m| CapabilityError::new("purge", m))
}

/// Purges every object tagged with `key` (the origin's `Surrogate-Key`
/// response header).
pub fn surrogate_key(key: &str) -> Result<u32, CapabilityError> {
    wit::surrogate_key(key, false).map_err(|m| CapabilityError::new("purge", m))
}

/// Marks every object tagged with `key` stale.
pub fn surrogate_key_soft(key: &str) -> Result<u32, CapabilityError> {
    wit::surrogate_key(key, true).map_err(|m| CapabilityError::new("purge", m))
}
