//! What the cache knows about a stored response besides its body, and the
//! freshness decisions made from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{CACHE_CONTROL, HeaderMap, HeaderName, PRAGMA};
use http::{StatusCode, request};
use http_cache_semantics::{BeforeRequest, CachePolicy};

use super::directives::StaleRules;
use super::fill::Fill;

/// Metadata of one stored variant.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    /// The variant key this object is stored under.
    pub key: String,
    pub status: StatusCode,
    /// Headers as the client receives them (hop-by-hop fields removed).
    pub headers: HeaderMap,
    pub policy: CachePolicy,
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

    /// Rough bytes this metadata occupies in memory (the policy keeps its own
    /// copy of the headers).
    pub fn approx_size(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 48)
            .sum();
        (self.key.len() + 3 * headers + 512) as u64
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
        Self::sharing(Arc::new(meta), body)
    }

    /// Another view of the same metadata (the disk tier's copy of an object
    /// the memory tier also holds).
    pub fn sharing(meta: Arc<ObjectMeta>, body: Arc<Fill>) -> Self {
        Self {
            meta,
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
    pub fn freshness(&self, req: &request::Parts, now: SystemTime) -> Freshness {
        let fresh_until = self.effective_fresh_until();
        let plain_request =
            !req.headers.contains_key(CACHE_CONTROL) && !req.headers.contains_key(PRAGMA);
        let fresh = if plain_request {
            now < fresh_until
        } else {
            now < fresh_until
                && matches!(
                    self.meta.policy.before_request(req, now),
                    BeforeRequest::Fresh(_)
                )
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
        self.meta.policy.age(now).as_secs()
    }

    /// Seconds of freshness left (0 when stale), for `Cache-Status: ttl`.
    pub fn ttl(&self, now: SystemTime) -> i64 {
        match self.effective_fresh_until().duration_since(now) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }
}
