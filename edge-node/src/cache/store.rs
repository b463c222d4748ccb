//! The two storage tiers and their eviction.
//!
//! The memory tier is a moka cache weighted by bytes (bodies held in memory
//! plus metadata); it indexes every object it knows, including large ones
//! whose body lives only on disk. The disk tier is a second moka cache
//! weighted by file size whose eviction deletes the files; it is rebuilt
//! from the meta files at startup, which is how the cache survives a restart.
//! Both expire an object when its retention (freshness plus the windows in
//! which it may still be served stale or revalidated) ends.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use moka::notification::RemovalCause;
use moka::sync::Cache as Moka;

use super::disk::{self, Layout};
use super::fill::{Fill, Progress};
use super::meta::{CachedObject, ObjectMeta};
use crate::config::CacheConfig;

type Index = Moka<String, Arc<CachedObject>>;

/// Expires entries at the end of their retention.
struct Retention {
    grace: Duration,
    keep: Duration,
}

impl Retention {
    fn remaining(&self, obj: &CachedObject) -> Option<Duration> {
        let until = obj.meta.retain_until(self.grace, self.keep);
        Some(until.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

impl moka::Expiry<String, Arc<CachedObject>> for Retention {
    fn expire_after_create(
        &self,
        _: &String,
        obj: &Arc<CachedObject>,
        _: Instant,
    ) -> Option<Duration> {
        self.remaining(obj)
    }
    fn expire_after_update(
        &self,
        _: &String,
        obj: &Arc<CachedObject>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(obj)
    }
}

pub struct Tiers {
    pub memory: Index,
    pub disk: Option<(Layout, Index)>,
    pub config: CacheConfig,
}

impl Tiers {
    /// Builds both tiers and reloads the disk tier from `config.disk.dir`.
    pub fn open(config: &CacheConfig) -> std::io::Result<Self> {
        let retention = || Retention {
            grace: config.grace,
            keep: config.keep,
        };
        let memory: Index = Moka::builder()
            .max_capacity(config.memory_capacity)
            .weigher(|_, obj: &Arc<CachedObject>| {
                (obj.meta.approx_size() + obj.body.memory_bytes()).min(u32::MAX as u64) as u32
            })
            .expire_after(retention())
            .support_invalidation_closures()
            .build();
        let disk = match &config.disk {
            None => None,
            Some(d) => {
                let layout = Layout::new(&d.dir)?;
                let mem = memory.clone();
                let del_layout = layout.clone();
                let index: Index = Moka::builder()
                    .max_capacity(d.capacity)
                    .weigher(|_, obj: &Arc<CachedObject>| match obj.body.progress() {
                        Progress::Done(n) => (n + 4096).min(u32::MAX as u64) as u32,
                        _ => 4096,
                    })
                    .expire_after(retention())
                    .support_invalidation_closures()
                    .eviction_listener(move |key: Arc<String>, obj: Arc<CachedObject>, cause| {
                        if cause == RemovalCause::Replaced {
                            return;
                        }
                        remove_files(&del_layout, &key, obj.body.file().map(PathBuf::from));
                        // A memory entry that reads from this file must go too.
                        if let Some(m) = mem.get(key.as_str())
                            && !m.body.in_memory()
                            && m.body.file() == obj.body.file()
                        {
                            mem.invalidate(key.as_str());
                        }
                    })
                    .build();
                let retain = |m: &ObjectMeta| m.retain_until(config.grace, config.keep);
                for r in disk::scan(&layout, SystemTime::now(), retain) {
                    let obj =
                        Arc::new(CachedObject::new(r.meta, Fill::on_disk(r.body, r.body_len)));
                    if let Some(at) = r.soft_purged {
                        obj.soft_purge(at);
                    }
                    index.insert(obj.meta.key.clone(), obj);
                }
                Some((layout, index))
            }
        };
        Ok(Self {
            memory,
            disk,
            config: config.clone(),
        })
    }

    /// Finds `key` in memory, then on disk.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        if let Some(obj) = self.memory.get(key) {
            return (obj.body.progress() != Progress::Failed).then_some(obj);
        }
        let (_, disk) = self.disk.as_ref()?;
        let obj = disk.get(key)?;
        self.memory.insert(key.to_string(), obj.clone());
        Some(obj)
    }

    /// Removes `key` from every tier (and its files).
    pub fn remove(&self, key: &str) {
        self.memory.invalidate(key);
        if let Some((_, disk)) = &self.disk {
            disk.invalidate(key);
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

    fn disk_serves(&self, key: &str, path: &std::path::Path) -> bool {
        self.disk
            .as_ref()
            .and_then(|(_, disk)| disk.get(key))
            .is_some_and(|o| o.body.file() == Some(path))
    }

    /// Makes `twin` the disk tier's copy of its key, deleting the body file
    /// of the copy it replaces when that is another file (a new fill; a 304
    /// refresh shares the file).
    pub fn replace_on_disk(&self, twin: Arc<CachedObject>) {
        let Some((_, disk)) = &self.disk else {
            return;
        };
        let previous = disk.get(&twin.meta.key);
        let new_file = twin.body.file().map(PathBuf::from);
        disk.insert(twin.meta.key.clone(), twin);
        if let Some(old) = previous.as_ref().and_then(|p| p.body.file())
            && new_file.as_deref() != Some(old)
        {
            let _ = std::fs::remove_file(old);
        }
    }

    /// Every object in either tier matching `pred`.
    pub fn matching(&self, pred: impl Fn(&CachedObject) -> bool) -> Vec<Arc<CachedObject>> {
        let mut out: Vec<Arc<CachedObject>> = self
            .memory
            .iter()
            .filter(|(_, o)| pred(o))
            .map(|(_, o)| o)
            .collect();
        if let Some((_, disk)) = &self.disk {
            out.extend(disk.iter().filter(|(_, o)| pred(o)).map(|(_, o)| o));
        }
        out
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory.run_pending_tasks();
        self.memory.weighted_size()
    }

    pub fn disk_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, |(_, d)| {
            d.run_pending_tasks();
            d.weighted_size()
        })
    }

    pub fn object_count(&self) -> u64 {
        self.memory.entry_count()
    }
}

fn remove_files(layout: &Layout, key: &str, body: Option<PathBuf>) {
    if let Some(body) = body {
        let _ = std::fs::remove_file(body);
    }
    let _ = std::fs::remove_file(layout.meta_path(key));
}
