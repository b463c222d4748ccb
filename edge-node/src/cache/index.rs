//! Secondary indexes over what the tiers hold, so that an invalidation or
//! a purge costs what it touches instead of a scan of the whole cache:
//! resource (primary key) → its `Vary` names and variant keys; surrogate
//! key → variant keys; URL path (decoded, without query) → primary keys,
//! for purges from the origin's change feed, which knows paths but not host
//! names.
//!
//! Entries are added after an object enters a tier and removed only when
//! it has left every tier ([`Index::remove_if`], which decides under the
//! shard's lock). A stale entry costs a lookup that finds nothing; a
//! missing one would let a purge miss an object, so the order matters.
//! What an entry costs is weighed by the tiers ([`Index::cost`]).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};

use http::HeaderName;

use super::key;

const SHARDS: usize = 64;

#[derive(Default)]
struct Resource {
    vary: Option<Arc<[HeaderName]>>,
    variants: HashSet<String>,
}

#[derive(Default)]
struct Shard {
    resources: HashMap<String, Resource>,
    tagged: HashMap<String, HashSet<String>>,
    paths: HashMap<String, HashSet<String>>,
}

/// What the index records for one stored variant.
pub struct Entry<'a> {
    pub key: &'a str,
    pub vary: &'a [HeaderName],
    pub surrogate_keys: &'a [String],
}

pub struct Index {
    shards: Vec<RwLock<Shard>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: Default::default(),
        }
    }
}

impl Index {
    fn shard(&self, s: &str) -> &RwLock<Shard> {
        &self.shards[self.hasher.hash_one(s) as usize % SHARDS]
    }

    /// Bytes an entry adds across the indexes (keys stored up to three
    /// times, set and map slots).
    pub fn cost(key: &str, surrogate_keys: &[String]) -> u64 {
        let tags: usize = surrogate_keys
            .iter()
            .map(|t| t.len() + key.len() + 96)
            .sum();
        (3 * key.len() + 3 * 64 + tags) as u64
    }

    /// The `Vary` names stored responses for `primary` listed.
    pub fn vary(&self, primary: &str) -> Option<Arc<[HeaderName]>> {
        let shard = self.shard(primary).read().expect("index lock");
        shard.resources.get(primary)?.vary.clone()
    }

    /// Records a stored variant (idempotent).
    pub fn add(&self, e: &Entry<'_>) {
        let primary = key::primary_of(e.key);
        {
            let mut shard = self.shard(primary).write().expect("index lock");
            let r = shard.resources.entry(primary.to_string()).or_default();
            r.vary = (!e.vary.is_empty()).then(|| e.vary.into());
            r.variants.insert(e.key.to_string());
        }
        for tag in e.surrogate_keys {
            let mut shard = self.shard(tag).write().expect("index lock");
            shard
                .tagged
                .entry(tag.clone())
                .or_default()
                .insert(e.key.to_string());
        }
        let path = key::path_of(primary);
        let mut shard = self.shard(&path).write().expect("index lock");
        shard
            .paths
            .entry(path)
            .or_default()
            .insert(primary.to_string());
    }

    /// Forgets `e` if `gone()` (asked under the lock of its resource's
    /// shard) says no tier holds it any more.
    pub fn remove_if(&self, e: &Entry<'_>, gone: impl FnOnce() -> bool) {
        let primary = key::primary_of(e.key);
        let resource_empty = {
            let mut shard = self.shard(primary).write().expect("index lock");
            if !gone() {
                return;
            }
            let Some(r) = shard.resources.get_mut(primary) else {
                return;
            };
            r.variants.remove(e.key);
            let empty = r.variants.is_empty();
            if empty {
                shard.resources.remove(primary);
            }
            empty
        };
        for tag in e.surrogate_keys {
            let mut shard = self.shard(tag).write().expect("index lock");
            if let Some(keys) = shard.tagged.get_mut(tag) {
                keys.remove(e.key);
                if keys.is_empty() {
                    shard.tagged.remove(tag);
                }
            }
        }
        if resource_empty {
            let path = key::path_of(primary);
            let mut shard = self.shard(&path).write().expect("index lock");
            if let Some(primaries) = shard.paths.get_mut(&path) {
                primaries.remove(primary);
                if primaries.is_empty() {
                    shard.paths.remove(&path);
                }
            }
        }
    }

    /// The variant keys of `primary`.
    pub fn variants(&self, primary: &str) -> Vec<String> {
        let shard = self.shard(primary).read().expect("index lock");
        shard
            .resources
            .get(primary)
            .map(|r| r.variants.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The variant keys tagged with `surrogate_key`.
    pub fn tagged(&self, surrogate_key: &str) -> Vec<String> {
        let shard = self.shard(surrogate_key).read().expect("index lock");
        shard
            .tagged
            .get(surrogate_key)
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The variant keys stored for URL path `path` (any host, any query).
    pub fn at_path(&self, path: &str) -> Vec<String> {
        let path = key::normalized_path(path);
        let primaries: Vec<String> = {
            let shard = self.shard(&path).read().expect("index lock");
            shard
                .paths
                .get(&path)
                .map(|p| p.iter().cloned().collect())
                .unwrap_or_default()
        };
        primaries.iter().flat_map(|p| self.variants(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(key: &'a str, tags: &'a [String]) -> Entry<'a> {
        Entry {
            key,
            vary: &[],
            surrogate_keys: tags,
        }
    }

    #[test]
    fn finds_variants_tags_and_paths_and_forgets_them() {
        let idx = Index::default();
        let tags = vec!["t1".to_string()];
        let a = "cdn.test/a%20b?v=1";
        let a2 = "cdn.test/a%20b?v=1\n@https";
        let b = "other.test/a b";
        idx.add(&entry(a, &tags));
        idx.add(&entry(a2, &[]));
        idx.add(&entry(b, &[]));
        let mut v = idx.variants("cdn.test/a%20b?v=1");
        v.sort();
        assert_eq!(v, [a, a2]);
        assert_eq!(idx.tagged("t1"), [a]);
        let mut at = idx.at_path("/a b");
        at.sort();
        assert_eq!(at, [a, a2, b]);
        idx.remove_if(&entry(a, &tags), || false);
        assert_eq!(idx.tagged("t1"), [a], "still held by a tier");
        idx.remove_if(&entry(a, &tags), || true);
        assert!(idx.tagged("t1").is_empty());
        assert_eq!(idx.variants("cdn.test/a%20b?v=1"), [a2]);
        idx.remove_if(&entry(a2, &[]), || true);
        assert_eq!(idx.at_path("/a%20b"), [b]);
    }
}
