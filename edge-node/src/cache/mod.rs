//! The HTTP cache: RFC 9111 decisions (by `http-cache-semantics`, fed a
//! strict reading of the headers from `directives`), storage in a memory and
//! a disk tier (`store`, `disk`), bodies that stream while stored (`fill`),
//! coalesced misses (`lock`), keys and variants (`key`), and purges.

mod accept_encoding;
mod accept_language;
mod dates;
mod directives;
mod disk;
mod disk_reserve;
mod fill;
mod index;
mod key;
mod lock;
mod meta;
mod purge_url;
mod request_directives;
mod stale_epoch;
mod status;
mod store;
mod targeted;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, request, response};
use http_cache_semantics::{AfterResponse, CacheOptions, CachePolicy};
use moka::sync::Cache as Moka;

pub use accept_encoding::normalize as normalize_accept_encoding;
pub use accept_language::normalize as normalize_accept_language;
pub use dates::parse as parse_http_date;
pub use fill::{Fill, FillWriter};
pub use key::{Scheme, primary};
pub use lock::{Coalescer, LeaderGuard, Outcome, Role, wait};
pub use meta::{CachedObject, Freshness, ObjectMeta};
pub use purge_url::url_key;
pub use request_directives::only_if_cached;
pub use targeted::DEFAULT_FIELDS as DEFAULT_TARGETED_FIELDS;

use crate::config::CacheConfig;
use store::Tiers;

/// Hop-by-hop fields (RFC 9110 §7.6.1) that are never stored or forwarded.
pub const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop fields and the fields the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP) {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

const SURROGATE_KEY: &str = "surrogate-key";

/// Fields of a 304 that must not replace the stored ones (RFC 9111 §3.2).
const NOT_UPDATED_BY_304: &[&str] = &[
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "content-range",
];

/// A request as the cache sees it: the resource's primary key and the
/// request parts the RFC 9111 decisions need.
pub struct CacheRequest {
    pub primary: String,
    pub scheme: Scheme,
    pub parts: request::Parts,
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub objects: u64,
    /// Disk bytes reserved by fills in progress.
    pub disk_fill_reserved: u64,
}

/// How long a response that outgrew memory on an edge without a disk tier
/// is passed through instead of stored (Varnish's hit-for-miss).
pub(crate) const TOO_LARGE_PASS: Duration = Duration::from_secs(600);

/// RAM for the too-large map, part of the fixed overhead.
const TOO_LARGE_BYTES: u64 = 4 << 20;

pub struct Cache {
    tiers: Tiers,
    /// Variant keys whose bodies outgrew `max_memory_object` with no disk
    /// tier to spill to: passed through for [`TOO_LARGE_PASS`].
    too_large: Moka<String, ()>,
    pub coalescer: Arc<Coalescer>,
    next_fill: AtomicU64,
}

impl Cache {
    pub fn open(config: &CacheConfig) -> std::io::Result<Self> {
        let tiers = Tiers::open(config)?;
        let start = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        Ok(Self {
            tiers,
            too_large: Moka::builder()
                .max_capacity(TOO_LARGE_BYTES)
                .weigher(|k: &String, _| (k.len() + 128) as u32)
                .time_to_live(TOO_LARGE_PASS)
                .build(),
            coalescer: Arc::default(),
            next_fill: AtomicU64::new(start),
        })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.tiers.config
    }

    /// The key a request looks up, given the `Vary` fields seen for its
    /// resource.
    pub fn lookup_key(&self, req: &CacheRequest) -> String {
        match self.tiers.index.vary(&req.primary) {
            Some(names) => key::variant(&req.primary, req.scheme, &names, &req.parts.headers),
            None => key::variant(&req.primary, req.scheme, &[], &req.parts.headers),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.tiers.get(key)
    }

    /// Starts storing a response if RFC 9111 allows it: returns the new
    /// object (already visible to lookups, body still arriving) and the
    /// writer for its body. `None` means "do not store".
    pub async fn begin_store(
        &self,
        req: &CacheRequest,
        res: &response::Parts,
        now: SystemTime,
    ) -> Option<(Arc<CachedObject>, FillWriter)> {
        let meta = self.new_meta(req, res, now)?;
        let config = self.config();
        let max_total = match &self.tiers.disk {
            Some(disk) => config.max_object_size.min(disk.max_body),
            None => config.max_memory_object,
        };
        if content_length(&res.headers).is_some_and(|len| len > max_total)
            || self.too_large.contains_key(&meta.key)
        {
            return None;
        }
        let fill_id = self.next_fill.fetch_add(1, Ordering::Relaxed);
        let file = match &self.tiers.disk {
            Some(disk) => Some(disk.layout.new_body_path(&meta.key, fill_id).ok()?),
            None => None,
        };
        let fill = Fill::new(file);
        let mut reservation = self
            .tiers
            .disk
            .as_ref()
            .map(|d| disk_reserve::Reservation::new(d.reserve.clone()));
        // A declared length is reserved whole up front: no room, no fill.
        if let (Some(r), Some(len)) = (reservation.as_mut(), content_length(&res.headers))
            && !r.grow_to(len)
        {
            return None;
        }
        let writer = FillWriter::new(
            fill.clone(),
            config.max_memory_object,
            max_total,
            reservation,
        )
        .await
        .ok()?;
        let obj = Arc::new(CachedObject::new(meta, fill));
        if let Some(old) = self.tiers.memory.get(&obj.meta.key) {
            self.tiers.discard_replaced(&old, &obj);
        }
        self.tiers.insert_memory(obj.clone());
        Some((obj, writer))
    }

    fn new_meta(
        &self,
        req: &CacheRequest,
        res: &response::Parts,
        now: SystemTime,
    ) -> Option<ObjectMeta> {
        let (normalized, policy_status) =
            status::policy_view(res.status, &res.headers, &self.config().targeted_fields);
        // A response to a request with credentials is that client's
        // (the proxy passes such requests; this keeps it true for any
        // caller).
        let policy_status = policy_status?;
        if normalized.vary_star
            || res.status == StatusCode::PARTIAL_CONTENT
            || res.headers.contains_key(header::SET_COOKIE)
            || req.parts.headers.contains_key(header::AUTHORIZATION)
        {
            return None;
        }
        let vary = key::vary_names(&res.headers)?;
        let policy_req = policy_request(&req.parts, &vary);
        let policy_res = PolicyResponse {
            status: policy_status,
            headers: &normalized.for_policy,
        };
        let policy =
            CachePolicy::new_options(&policy_req, &policy_res, now, CacheOptions::default());
        if !policy.is_storable() {
            return None;
        }
        let initial_age = policy.age(now);
        let mut headers = meta::compact_headers(&res.headers);
        strip_hop_by_hop(&mut headers);
        let surrogate_keys = take_surrogate_keys(&mut headers);
        if !headers.contains_key(header::DATE) {
            headers.insert(header::DATE, http_date(now));
        }
        Some(ObjectMeta {
            key: key::variant(&req.primary, req.scheme, &vary, &req.parts.headers),
            status: res.status,
            headers,
            fresh_until: now + policy.time_to_live(now),
            response_time: now,
            initial_age,
            stale: normalized.stale,
            surrogate_keys,
            vary,
        })
    }

    /// Completes a store: on success the object gets its final weight and
    /// its disk copy; on failure it is removed.
    pub async fn finish_store(&self, obj: &Arc<CachedObject>, writer: FillWriter, ok: bool) {
        if !ok {
            if writer.outgrew_memory() {
                self.too_large.insert(obj.meta.key.clone(), ());
            }
            // Out of the index first, so no new request attaches to a body
            // that is about to abort.
            obj.mark_removed();
            self.remove_if_current(obj);
            writer.fail().await;
            return;
        }
        let Ok(len) = writer.finish().await else {
            self.remove_if_current(obj);
            return;
        };
        // A 304 that arrived while the body was still filling replaced the
        // object with a refreshed one sharing this body: that one is what
        // lookups see, so it is the one reweighed and written to disk (the
        // refresh could not persist an incomplete body).
        let current = match self.tiers.memory.get(&obj.meta.key) {
            Some(o) if Arc::ptr_eq(&o, obj) || Arc::ptr_eq(&o.body, &obj.body) => {
                self.tiers.memory.insert(o.meta.key.clone(), o.clone());
                o
            }
            _ => obj.clone(),
        };
        self.persist(&current, len).await;
    }

    async fn persist(&self, obj: &Arc<CachedObject>, len: u64) {
        let (Some(disk), Some(path)) = (&self.tiers.disk, obj.body.file()) else {
            return;
        };
        let (layout2, meta, path2) = (disk.layout.clone(), obj.meta.clone(), path.to_path_buf());
        let soft_purged_ms = obj.soft_purged_ms();
        let written = tokio::task::spawn_blocking(move || {
            disk::write_meta(&layout2, &meta, soft_purged_ms, &path2, len)
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.tiers.replace_on_disk(&obj.meta, path, len);
                // Purged while its metadata was being written: undo the
                // insert (which also deletes the files).
                if obj.is_removed() {
                    self.tiers.remove(&obj.meta.key);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(key = %obj.meta.key, error = %e, "cache: writing disk metadata failed (disk full or read-only?); object dropped, the next request fetches it again");
                // Its body lives in that file: a later hit would open a path
                // that is gone, so the object leaves the memory tier first.
                // Then nothing may point at the file: without a meta file it
                // would be an orphan until the next restart's scan.
                self.remove_if_current(obj);
                if !self.tiers.on_disk(&obj.meta.key) {
                    let _ = std::fs::remove_file(path);
                }
            }
            Err(e) => tracing::error!(error = %e, "cache: disk metadata task failed"),
        }
    }

    fn remove_if_current(&self, obj: &Arc<CachedObject>) {
        if self
            .tiers
            .memory
            .get(&obj.meta.key)
            .is_some_and(|o| Arc::ptr_eq(&o, obj))
        {
            self.tiers.memory.invalidate(&obj.meta.key);
        }
    }

    /// Applies a revalidation response to a stored object. A 304 that
    /// matches refreshes the stored headers and freshness (the body is kept)
    /// and returns the refreshed object; `None` means the stored body cannot
    /// be used and the response must be fetched in full.
    pub async fn refresh(
        &self,
        old: &Arc<CachedObject>,
        req: &CacheRequest,
        res: &response::Parts,
        now: SystemTime,
    ) -> Option<Arc<CachedObject>> {
        // A cookie is one client's; fetch in full so it reaches only that
        // client and nothing cookie-bearing stays stored.
        if old.is_removed() || res.headers.contains_key(header::SET_COOKIE) {
            return None;
        }
        let mut update = res.headers.clone();
        strip_hop_by_hop(&mut update);
        let policy_req = policy_request(&req.parts, &old.meta.vary);
        let targeted = &self.config().targeted_fields;
        let verdict = old.meta.policy_for(&policy_req, targeted).after_response(
            &policy_req,
            &PolicyResponse {
                status: res.status,
                headers: &update,
            },
            now,
        );
        if matches!(verdict, AfterResponse::Modified(..)) {
            return None;
        }
        let mut headers = old.meta.headers.clone();
        for name in update.keys() {
            if NOT_UPDATED_BY_304.contains(&name.as_str()) || name.as_str() == SURROGATE_KEY {
                continue;
            }
            headers.remove(name);
            for v in update.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        let (normalized, policy_status) = status::policy_view(old.meta.status, &headers, targeted);
        let policy_res = PolicyResponse {
            status: policy_status.unwrap_or(old.meta.status),
            headers: &normalized.for_policy,
        };
        let policy =
            CachePolicy::new_options(&policy_req, &policy_res, now, CacheOptions::default());
        let meta = ObjectMeta {
            key: old.meta.key.clone(),
            status: old.meta.status,
            headers: meta::compact_headers(&headers),
            fresh_until: now + policy.time_to_live(now),
            response_time: now,
            initial_age: policy.age(now),
            stale: normalized.stale,
            surrogate_keys: old.meta.surrogate_keys.clone(),
            vary: old.meta.vary.clone(),
        };
        let obj = Arc::new(CachedObject::new(meta, old.body.clone()));
        self.tiers.insert_memory(obj.clone());
        // Purged while the origin answered: the purge found `old` (and may
        // have deleted the body both share), not this object.
        if old.is_removed() {
            self.remove_if_current(&obj);
            return None;
        }
        if let fill::Progress::Done(len) = obj.body.progress() {
            self.persist(&obj, len).await;
        }
        Some(obj)
    }

    /// RFC 9111 §4.4: a successful unsafe request invalidates the stored
    /// responses for its URL.
    pub async fn invalidate_url(&self, primary: &str) {
        self.purge_url(primary, false).await;
    }

    /// Purges every variant of `primary` (both schemes); returns how many
    /// were found.
    pub async fn purge_url(&self, primary: &str, soft: bool) -> usize {
        let keys = self.tiers.index.variants(primary);
        self.purge(keys, soft).await
    }

    /// Purges every object tagged with `surrogate_key`.
    pub async fn purge_surrogate_key(&self, surrogate_key: &str, soft: bool) -> usize {
        let keys = self.tiers.index.tagged(surrogate_key);
        self.purge(keys, soft).await
    }

    /// Purges every object stored for URL path `path` on any host and with
    /// any query string (a purge or deploy announced by the origin's change
    /// feed, which does not know the host names clients use).
    pub async fn purge_path(&self, path: &str, soft: bool) -> usize {
        let keys = self.tiers.index.at_path(path);
        self.purge(keys, soft).await
    }

    /// Purges everything: after this edge missed change-feed events, any
    /// stored object may be out of date. Soft, so each is revalidated with
    /// its validators (cheap when unchanged) and can still be served stale
    /// if the origin is down; lazy ([`stale_epoch`]), so it costs one
    /// saved instant, not a write per object. Returns the objects stored.
    pub async fn soft_purge_all(&self) -> std::io::Result<u64> {
        let stale = self.tiers.stale.clone();
        tokio::task::spawn_blocking(move || stale.mark(SystemTime::now()))
            .await
            .map_err(std::io::Error::other)??;
        Ok(self.usage().objects)
    }

    /// Purges the objects stored under `keys`: only those, found through
    /// the indexes, never a scan. Soft purges return once the disk metadata
    /// records them, so a restart (or a change-feed position saved after
    /// the purge) cannot bring the objects back as fresh.
    async fn purge(&self, keys: Vec<String>, soft: bool) -> usize {
        let now = SystemTime::now();
        let mut found = 0;
        let mut in_memory = Vec::new();
        let mut disk_only = Vec::new();
        for key in keys {
            let obj = self.tiers.memory.get(&key);
            let on_disk = self.tiers.on_disk(&key);
            if obj.is_none() && !on_disk {
                continue;
            }
            found += 1;
            match (obj, soft) {
                (Some(o), true) => {
                    o.soft_purge(now);
                    in_memory.push(o);
                }
                (None, true) => disk_only.push(key),
                (obj, false) => {
                    if let Some(o) = obj {
                        o.mark_removed();
                    }
                    self.tiers.remove(&key);
                }
            }
        }
        if soft {
            self.persist_soft_purges(&in_memory, disk_only, now).await;
        }
        found
    }

    /// Rewrites the disk metadata of soft-purged objects whose body is
    /// complete (a fill still running writes its metadata, purge included,
    /// when it ends).
    async fn persist_soft_purges(
        &self,
        found: &[Arc<CachedObject>],
        disk_only: Vec<String>,
        now: SystemTime,
    ) {
        let Some(disk) = &self.tiers.disk else {
            return;
        };
        let layout = &disk.layout;
        let mut writes = std::collections::HashMap::new();
        for o in found {
            if let (Some(path), fill::Progress::Done(len)) = (o.body.file(), o.body.progress()) {
                writes.insert(
                    path.to_path_buf(),
                    (o.meta.clone(), o.soft_purged_ms(), len),
                );
            }
        }
        if writes.is_empty() && disk_only.is_empty() {
            return;
        }
        let layout = layout.clone();
        let ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .max(1) as u64;
        let written = tokio::task::spawn_blocking(move || {
            for (path, (meta, soft_purged_ms, len)) in writes {
                if let Err(e) = disk::write_meta(&layout, &meta, soft_purged_ms, &path, len) {
                    tracing::warn!(key = %meta.key, error = %e, "cache: recording a soft purge on disk failed; after a restart the object is fresh again until it expires");
                }
            }
            for key in disk_only {
                if let Err(e) = disk::record_soft_purge(&layout, &key, ms) {
                    tracing::warn!(key = %key, error = %e, "cache: recording a soft purge on disk failed; the object is fresh again until it expires");
                }
            }
        })
        .await;
        if let Err(e) = written {
            tracing::error!(error = %e, "cache: soft purge disk task failed");
        }
    }

    pub fn usage(&self) -> Usage {
        Usage {
            memory_bytes: self.tiers.memory_bytes(),
            disk_bytes: self.tiers.disk_bytes(),
            objects: self.tiers.object_count(),
            disk_fill_reserved: self.tiers.disk.as_ref().map_or(0, |d| d.reserve.used()),
        }
    }
}

/// The request fields a stored policy needs: those that decide reuse (host,
/// authorization, cache directives) and the ones `Vary` names. The method is
/// GET: a HEAD miss is filled with a GET, and the stored response serves both.
fn policy_request(parts: &request::Parts, vary: &[HeaderName]) -> request::Parts {
    let (mut p, ()) = http::Request::builder()
        .method(http::Method::GET)
        .uri(parts.uri.clone())
        .body(())
        .expect("parts of a valid request")
        .into_parts();
    let wanted = [
        header::HOST,
        header::AUTHORIZATION,
        header::CACHE_CONTROL,
        header::PRAGMA,
    ];
    for name in wanted.iter().chain(vary) {
        for v in parts.headers.get_all(name) {
            p.headers.append(name.clone(), v.clone());
        }
    }
    p
}

struct PolicyResponse<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
}

impl http_cache_semantics::ResponseLike for PolicyResponse<'_> {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

fn take_surrogate_keys(headers: &mut HeaderMap) -> Vec<String> {
    let keys = headers
        .get_all(SURROGATE_KEY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split_ascii_whitespace())
        .map(str::to_string)
        .collect();
    headers.remove(SURROGATE_KEY);
    keys
}

/// The `Content-Length` a message declares, if valid.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub fn http_date(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("http dates are valid header values")
}

/// The body length when the fill is complete.
pub fn fill_progress_len(fill: &Fill) -> Option<u64> {
    match fill.progress() {
        fill::Progress::Done(n) => Some(n),
        _ => None,
    }
}
