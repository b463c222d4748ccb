//! The two storage tiers, their eviction, and the indexes over both.
//!
//! The memory tier is a moka cache weighted by everything an entry keeps in
//! RAM: metadata, the body when it is held in memory, the entry's share of
//! the indexes and a fixed per-entry overhead ([`ENTRY_OVERHEAD`]). Objects
//! whose body lives on disk are in it too while they are hot.
//!
//! The disk tier is a second moka cache of compact entries (where the body
//! is, its size, its retention, its surrogate keys); the rest of an object's
//! metadata stays in its meta file until a hit loads it into the memory
//! tier. Each entry is weighed against both of the tier's budgets, disk
//! bytes (`disk.capacity`) and RAM (`disk.index_memory`): its weight is the
//! larger of its two shares, so neither budget can be exceeded. Evicting an
//! entry deletes its files. The tier is rebuilt from the meta files at
//! startup, one file at a time, which is how the cache survives a restart.
//!
//! Both expire an entry when its retention (freshness plus the windows in
//! which it may still be served stale or revalidated) ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use moka::notification::RemovalCause;
use moka::sync::Cache as Moka;

use super::disk::{self, Layout};
use super::disk_reserve::{DiskReserve, IN_FLIGHT_SHARE};
use super::fill::{Fill, Progress};
use super::index::{self, Index};
use super::meta::{CachedObject, ObjectMeta};
use super::stale_epoch::StaleEpoch;
use crate::config::CacheConfig;

type Memory = Moka<String, Arc<CachedObject>>;
type DiskIndex = Moka<String, Arc<DiskEntry>>;

/// What one memory-tier entry costs besides its metadata, body and index
/// share: moka's entry, node and hash slot, the key's second copy, the
/// `CachedObject` and `Fill` structs and their `Arc`s and locks.
pub const ENTRY_OVERHEAD: u64 = 512;

/// What one disk-tier entry costs in RAM besides its key and surrogate keys.
const DISK_ENTRY_OVERHEAD: u64 = 384;

/// Disk files are weighed with a block of slack each (meta file, rounding).
const FILE_SLACK: u64 = 4096;

/// The scale of disk-tier weights: a full budget is this many units. One
/// entry weighs at most `u32::MAX` units, 1/16 of the budget, which is why
/// the disk tier refuses bodies over 1/16 of its capacity.
const DISK_UNITS: u64 = 1 << 36;

/// The compact record the disk tier keeps in RAM per object.
pub struct DiskEntry {
    pub body: PathBuf,
    pub body_len: u64,
    retain_until: SystemTime,
    surrogate_keys: Box<[String]>,
}

impl DiskEntry {
    fn ram_bytes(&self, key: &str) -> u64 {
        let tags: usize = self.surrogate_keys.iter().map(|t| t.len() + 24).sum();
        DISK_ENTRY_OVERHEAD
            + 2 * key.len() as u64
            + self.body.as_os_str().len() as u64
            + tags as u64
            + Index::cost(key, &self.surrogate_keys)
    }
}

/// Expires entries at the end of their retention.
struct Retention {
    grace: Duration,
    keep: Duration,
}

fn remaining(until: SystemTime) -> Option<Duration> {
    Some(until.duration_since(SystemTime::now()).unwrap_or_default())
}

impl moka::Expiry<String, Arc<CachedObject>> for Retention {
    fn expire_after_create(
        &self,
        _: &String,
        obj: &Arc<CachedObject>,
        _: Instant,
    ) -> Option<Duration> {
        remaining(obj.meta.retain_until(self.grace, self.keep))
    }
    fn expire_after_update(
        &self,
        _: &String,
        obj: &Arc<CachedObject>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        remaining(obj.meta.retain_until(self.grace, self.keep))
    }
}

struct DiskRetention;

impl moka::Expiry<String, Arc<DiskEntry>> for DiskRetention {
    fn expire_after_create(&self, _: &String, e: &Arc<DiskEntry>, _: Instant) -> Option<Duration> {
        remaining(e.retain_until)
    }
    fn expire_after_update(
        &self,
        _: &String,
        e: &Arc<DiskEntry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        remaining(e.retain_until)
    }
}

/// The disk tier: its layout and its index of compact entries.
pub struct Disk {
    pub layout: Layout,
    entries: DiskIndex,
    /// Body bytes of the entries (kept as they come and go, so `/metrics`
    /// does not walk the index).
    bytes: Arc<std::sync::atomic::AtomicU64>,
    /// Largest body the tier stores (1/16 of its capacity).
    pub max_body: u64,
    /// Room for fills in progress ([`DiskReserve`]).
    pub reserve: Arc<DiskReserve>,
}

pub struct Tiers {
    pub memory: Memory,
    pub disk: Option<Disk>,
    pub index: Arc<Index>,
    pub config: CacheConfig,
    /// Objects stored before this instant are stale ([`StaleEpoch`]).
    pub stale: Arc<StaleEpoch>,
}

fn index_entry(meta: &ObjectMeta) -> index::Entry<'_> {
    index::Entry {
        key: &meta.key,
        vary: &meta.vary,
        surrogate_keys: &meta.surrogate_keys,
    }
}

impl Tiers {
    /// Builds both tiers and reloads the disk tier from `config.disk.dir`.
    pub fn open(config: &CacheConfig) -> std::io::Result<Self> {
        let index = Arc::new(Index::default());
        let disk_cell: Arc<std::sync::OnceLock<DiskIndex>> = Arc::default();
        let memory_budget =
            config.memory_capacity - config.disk.as_ref().map_or(0, |d| d.index_memory);
        let memory: Memory = {
            let (index, disk_cell) = (index.clone(), disk_cell.clone());
            Moka::builder()
                .max_capacity(memory_budget)
                .weigher(|key: &String, obj: &Arc<CachedObject>| {
                    let bytes = obj.meta.memory_bytes()
                        + obj.body.memory_bytes()
                        + key.len() as u64
                        + Index::cost(key, &obj.meta.surrogate_keys)
                        + ENTRY_OVERHEAD;
                    bytes.min(u32::MAX as u64) as u32
                })
                .expire_after(Retention {
                    grace: config.grace,
                    keep: config.keep,
                })
                .eviction_listener(move |key: Arc<String>, obj: Arc<CachedObject>, cause| {
                    if cause == RemovalCause::Replaced {
                        return;
                    }
                    let on_disk = || {
                        disk_cell
                            .get()
                            .is_some_and(|d| d.contains_key(key.as_str()))
                    };
                    index.remove_if(&index_entry(&obj.meta), || !on_disk());
                })
                .build()
        };
        let disk = match &config.disk {
            None => None,
            Some(d) => {
                let layout = Layout::new(&d.dir)?;
                // The index holds what the reserve for fills leaves.
                let indexed = d.capacity - d.capacity / IN_FLIGHT_SHARE;
                let (capacity, ram) = (indexed.max(1), d.index_memory.max(1));
                let (mem, del_layout, idx) = (memory.clone(), layout.clone(), index.clone());
                let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let evicted_bytes = bytes.clone();
                let entries: DiskIndex = Moka::builder()
                    .max_capacity(DISK_UNITS)
                    .weigher(move |key: &String, e: &Arc<DiskEntry>| {
                        let file = (e.body_len + FILE_SLACK) as u128 * DISK_UNITS as u128
                            / capacity as u128;
                        let ram = e.ram_bytes(key) as u128 * DISK_UNITS as u128 / ram as u128;
                        (file.max(ram) + 1).min(u32::MAX as u128) as u32
                    })
                    .expire_after(DiskRetention)
                    .eviction_listener(move |key: Arc<String>, e: Arc<DiskEntry>, cause| {
                        if cause == RemovalCause::Replaced {
                            return;
                        }
                        evicted_bytes.fetch_sub(e.body_len, std::sync::atomic::Ordering::Relaxed);
                        let _ = std::fs::remove_file(&e.body);
                        let _ = std::fs::remove_file(del_layout.meta_path(&key));
                        // A memory entry that reads from this file must go too.
                        if let Some(m) = mem.get(key.as_str())
                            && !m.body.in_memory()
                            && m.body.file() == Some(e.body.as_path())
                        {
                            mem.invalidate(key.as_str());
                        }
                        let tagged = index::Entry {
                            key: &key,
                            vary: &[],
                            surrogate_keys: &e.surrogate_keys,
                        };
                        idx.remove_if(&tagged, || !mem.contains_key(key.as_str()));
                    })
                    .build();
                let _ = disk_cell.set(entries.clone());
                let retain = |m: &ObjectMeta| m.retain_until(config.grace, config.keep);
                disk::scan(&layout, SystemTime::now(), retain, |r| {
                    index.add(&index_entry(&r.meta));
                    let entry = DiskEntry {
                        body: r.body,
                        body_len: r.body_len,
                        retain_until: retain(&r.meta),
                        surrogate_keys: r.meta.surrogate_keys.into(),
                    };
                    bytes.fetch_add(entry.body_len, std::sync::atomic::Ordering::Relaxed);
                    entries.insert(r.meta.key, Arc::new(entry));
                });
                Some(Disk {
                    layout,
                    entries,
                    bytes,
                    max_body: d.capacity / 16,
                    reserve: DiskReserve::for_capacity(d.capacity),
                })
            }
        };
        Ok(Self {
            memory,
            disk,
            index,
            stale: Arc::new(StaleEpoch::load(
                config.disk.as_ref().map(|d| d.dir.as_path()),
            )),
            config: config.clone(),
        })
    }

    /// Finds `key` in memory, then on disk (loading its metadata into the
    /// memory tier).
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        if let Some(obj) = self.memory.get(key) {
            self.stale.apply(&obj);
            return (obj.body.progress() != Progress::Failed).then_some(obj);
        }
        let disk = self.disk.as_ref()?;
        let entry = disk.entries.get(key)?;
        let Some(r) = disk::load(&disk.layout, key).filter(|r| r.body == entry.body) else {
            disk.entries.invalidate(key);
            return None;
        };
        let obj = Arc::new(CachedObject::new(r.meta, Fill::on_disk(r.body, r.body_len)));
        if let Some(at) = r.soft_purged {
            obj.soft_purge(at);
        }
        self.stale.apply(&obj);
        self.insert_memory(obj.clone());
        Some(obj)
    }

    /// Puts `obj` in the memory tier and the indexes (in that order: see
    /// [`Index`]).
    pub fn insert_memory(&self, obj: Arc<CachedObject>) {
        self.memory.insert(obj.meta.key.clone(), obj.clone());
        self.index.add(&index_entry(&obj.meta));
    }

    /// Whether the disk tier has an entry for `key`.
    pub fn on_disk(&self, key: &str) -> bool {
        self.disk
            .as_ref()
            .is_some_and(|d| d.entries.contains_key(key))
    }

    /// Removes `key` from every tier (and its files).
    pub fn remove(&self, key: &str) {
        self.memory.invalidate(key);
        if let Some(disk) = &self.disk {
            disk.entries.invalidate(key);
        }
    }

    /// Deletes the body file an object replaced by a new fill was using,
    /// unless the disk tier still serves that file: the new fill may fail,
    /// and then the disk copy answers again. Its file goes once the new
    /// fill's copy replaces it on disk ([`Tiers::replace_on_disk`]).
    pub fn discard_replaced(&self, old: &CachedObject, new: &CachedObject) {
        if let Some(path) = old.body.file()
            && new.body.file() != Some(path)
            && !self.disk_serves(&old.meta.key, path)
        {
            let _ = std::fs::remove_file(path);
        }
    }

    fn disk_serves(&self, key: &str, path: &Path) -> bool {
        self.disk
            .as_ref()
            .and_then(|d| d.entries.get(key))
            .is_some_and(|e| e.body == path)
    }

    /// Makes `meta`'s complete body at `body` the disk tier's copy of its
    /// key, deleting the body file of the copy it replaces when that is
    /// another file (a new fill; a 304 refresh shares the file).
    pub fn replace_on_disk(&self, meta: &ObjectMeta, body: &Path, body_len: u64) {
        let Some(disk) = &self.disk else {
            return;
        };
        let previous = disk.entries.get(&meta.key);
        let entry = DiskEntry {
            body: body.to_path_buf(),
            body_len,
            retain_until: meta.retain_until(self.config.grace, self.config.keep),
            surrogate_keys: meta.surrogate_keys.clone().into(),
        };
        disk.bytes
            .fetch_add(body_len, std::sync::atomic::Ordering::Relaxed);
        disk.entries.insert(meta.key.clone(), Arc::new(entry));
        if let Some(old) = previous {
            disk.bytes
                .fetch_sub(old.body_len, std::sync::atomic::Ordering::Relaxed);
            if old.body != body {
                let _ = std::fs::remove_file(&old.body);
            }
        }
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory.run_pending_tasks();
        self.memory.weighted_size()
    }

    /// Bytes of body files the disk tier holds.
    pub fn disk_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| {
            d.entries.run_pending_tasks();
            d.bytes.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Objects either tier holds (memory entries plus disk-only ones are
    /// not told apart: the disk tier's count when it has one).
    pub fn object_count(&self) -> u64 {
        match &self.disk {
            Some(d) => d.entries.entry_count().max(self.memory.entry_count()),
            None => self.memory.entry_count(),
        }
    }
}
