//! What the cache knows about a stored response besides its body, and the
//! freshness decisions made from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName};
use http::{StatusCode, request};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};

use super::directives::StaleRules;
use super::fill::Fill;

/// Metadata of one stored variant: what every hit needs, decided once at
/// store time. No `CachePolicy` is kept (it holds a copy of the request's
/// and the response's headers and two directive maps, several KiB per
/// object); the rare decisions that need one (a 304, a request whose cache
/// directives a site honours) rebuild it from these fields.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    /// The variant key this object is stored under.
    pub key: String,
    pub status: StatusCode,
    /// Headers as the client receives them (hop-by-hop fields removed).
    pub headers: HeaderMap,
    /// When the response was received, and the age it had then (its `Age`
    /// field): `Age` now is their sum plus the time since (RFC 9111 §4.2.3).
    pub response_time: SystemTime,
    pub initial_age: Duration,
    pub stale: StaleRules,
    pub fresh_until: SystemTime,
    pub surrogate_keys: Vec<String>,
    pub vary: Vec<HeaderName>,
}

impl ObjectMeta {
    /// The primary key (resource) this variant belongs to.
    pub fn primary(&self) -> &str {
        self.key.split('\n').next().unwrap_or_default()
    }

    pub fn has_validator(&self) -> bool {
        self.headers.contains_key(http::header::ETAG)
            || self.headers.contains_key(http::header::LAST_MODIFIED)
    }

    /// How long the cache keeps the object past freshness: long enough to
    /// serve it stale where allowed, or to revalidate it when it has a
    /// validator.
    pub fn retain_until(&self, grace: Duration, keep: Duration) -> SystemTime {
        let stale_window = if self.stale.forbids_stale {
            Duration::ZERO
        } else {
            self.stale
                .stale_while_revalidate
                .max(self.stale.stale_if_error.unwrap_or(grace))
        };
        let keep = if self.has_validator() {
            keep
        } else {
            Duration::ZERO
        };
        self.fresh_until + stale_window.max(keep)
    }

    /// Bytes this metadata occupies in memory, as allocated: the struct,
    /// the key, each header's bucket, name and value (`HeaderMap` keeps a
    /// bucket of ~100 bytes, an index slot and a `Bytes` per value; names
    /// are counted even where they are static), the
    /// surrogate keys and the `Vary` names.
    pub fn memory_bytes(&self) -> u64 {
        const HEADER_BUCKET: usize = 128;
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| HEADER_BUCKET + k.as_str().len() + v.len())
            .sum();
        let surrogates: usize = self.surrogate_keys.iter().map(|k| k.len() + 24).sum();
        (std::mem::size_of::<Self>()
            + self.key.capacity()
            + headers
            + 64
            + surrogates
            + self.vary.len() * 32) as u64
    }

    /// The policy `http-cache-semantics` would have made at store time, for
    /// the decisions that need one (`req` stands in for the stored request:
    /// the fields that decide reuse are the ones the key already matched).
    pub fn policy_for(&self, req: &request::Parts, targeted: &[HeaderName]) -> CachePolicy {
        let (normalized, status) = super::status::policy_view(self.status, &self.headers, targeted);
        let res = super::PolicyResponse {
            // A status that is no longer storable (the configuration
            // changed since): the crate then finds the object stale.
            status: status.unwrap_or(self.status),
            headers: &normalized.for_policy,
        };
        CachePolicy::new_options(req, &res, self.response_time, CacheOptions::default())
    }
}

/// What may be done with a stored object for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Stale, but within stale-while-revalidate: serve it and refresh in the
    /// background.
    ServeStaleAndRefresh,
    /// Must be revalidated (or refetched) before use.
    Stale,
}

/// A stored variant: metadata plus body. Replaced as a whole when a 304
/// refreshes the metadata; the body is shared.
pub struct CachedObject {
    pub meta: Arc<ObjectMeta>,
    pub body: Arc<Fill>,
    /// Unix millis of a soft purge (0 = none): from then on the object is
    /// stale but still usable where stale responses are allowed.
    soft_purged_at: AtomicU64,
    /// Set when purged or invalidated, so a disk write still in flight for
    /// it does not bring it back.
    removed: AtomicBool,
}

impl CachedObject {
    pub fn new(meta: ObjectMeta, body: Arc<Fill>) -> Self {
        Self {
            meta: Arc::new(meta),
            body,
            soft_purged_at: AtomicU64::new(0),
            removed: AtomicBool::new(false),
        }
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Relaxed);
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    pub fn soft_purge(&self, now: SystemTime) {
        let ms = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let _ = self.soft_purged_at.compare_exchange(
            0,
            ms.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Unix millis of this object's soft purge, 0 if none.
    pub fn soft_purged_ms(&self) -> u64 {
        self.soft_purged_at.load(Ordering::Relaxed)
    }

    /// Freshness lifetime end, moved earlier by a soft purge.
    fn effective_fresh_until(&self) -> SystemTime {
        match self.soft_purged_at.load(Ordering::Relaxed) {
            0 => self.meta.fresh_until,
            ms => self
                .meta
                .fresh_until
                .min(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// Decides how `req` may use this object at `now`.
    /// `targeted` is the cache's RFC 9213 field list (the stored headers
    /// keep the origin's fields, so decisions are rebuilt from them).
    pub fn freshness(
        &self,
        req: &request::Parts,
        now: SystemTime,
        targeted: &[HeaderName],
    ) -> Freshness {
        let fresh_until = self.effective_fresh_until();
        let directives = super::request_directives::effective(req);
        let plain_request = directives.is_none();
        let fresh = match &directives {
            None => now < fresh_until,
            Some(req) => {
                now < fresh_until
                    && matches!(
                        self.meta.policy_for(req, targeted).before_request(req, now),
                        BeforeRequest::Fresh(_)
                    )
            }
        };
        if fresh {
            return Freshness::Fresh;
        }
        let swr = self.meta.stale.stale_while_revalidate;
        if plain_request
            && !self.meta.stale.forbids_stale
            && !swr.is_zero()
            && now < fresh_until + swr
        {
            return Freshness::ServeStaleAndRefresh;
        }
        Freshness::Stale
    }

    /// Whether the object may stand in for a failing origin (stale-if-error,
    /// or the configured grace when the response says nothing).
    pub fn usable_on_error(&self, now: SystemTime, grace: Duration) -> bool {
        !self.meta.stale.forbids_stale
            && now < self.effective_fresh_until() + self.meta.stale.stale_if_error.unwrap_or(grace)
    }

    /// Seconds for the `Age` header.
    pub fn age(&self, now: SystemTime) -> u64 {
        let resident = now
            .duration_since(self.meta.response_time)
            .unwrap_or_default();
        (self.meta.initial_age + resident).as_secs()
    }

    /// Seconds of freshness left (0 when stale), for `Cache-Status: ttl`.
    pub fn ttl(&self, now: SystemTime) -> i64 {
        match self.effective_fresh_until().duration_since(now) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }
}

/// A copy of `headers` whose values live in one exact-size buffer. Values
/// parsed by hyper are views into the connection's read buffer, so keeping
/// them would keep that whole buffer (many KiB) alive for as long as a
/// small object stays cached; one copy bounds a stored head by its size.
pub fn compact_headers(headers: &HeaderMap) -> HeaderMap {
    let total: usize = headers.values().map(|v| v.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(total);
    for v in headers.values() {
        buf.extend_from_slice(v.as_bytes());
    }
    let buf = buf.freeze();
    let mut out = HeaderMap::with_capacity(headers.len());
    let mut at = 0;
    for (name, v) in headers {
        let slice = buf.slice(at..at + v.len());
        at += v.len();
        let mut value =
            http::HeaderValue::from_maybe_shared(slice).expect("bytes of a valid header value");
        value.set_sensitive(v.is_sensitive());
        out.append(name.clone(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_headers_keep_every_value_in_order() {
        let mut h = HeaderMap::new();
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        h.insert("etag", "\"abc\"".parse().unwrap());
        let c = compact_headers(&h);
        assert_eq!(c, h);
        let all: Vec<_> = c.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
    }
}
