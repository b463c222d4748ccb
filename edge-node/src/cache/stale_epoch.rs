//! "Everything stored before now is stale", in constant time: what the
//! edge does when it may have missed purges (its change-feed position was
//! lost, or the origin no longer keeps the events after it).
//!
//! Rewriting every object's metadata at once (the earlier design) cost a
//! disk write per object on the async workers, all at the moment the edge
//! was already behind. Instead one instant is recorded, and each object is
//! checked against it when it is next looked up: one stored before it is
//! treated as soft-purged — still usable where stale responses are
//! allowed, revalidated (usually a cheap 304) before it is served fresh.
//! The instant is saved next to the disk cache before the follower saves
//! its new position, so a restart cannot bring stale objects back as fresh.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::meta::CachedObject;

const FILE: &str = "stale-before";

pub struct StaleEpoch {
    /// Unix millis; 0 = none.
    ms: AtomicU64,
    file: Option<PathBuf>,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl StaleEpoch {
    /// Reads the saved instant from the disk cache's directory. A file that
    /// cannot be read makes everything stored so far stale: the safe
    /// reading when the edge cannot tell what it missed.
    pub fn load(dir: Option<&Path>) -> Self {
        let file = dir.map(|d| d.join(FILE));
        let ms = match &file {
            None => 0,
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                    tracing::warn!(file = %path.display(), "the cache's stale-before mark is not a number; every stored object will be revalidated");
                    millis(SystemTime::now())
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read the cache's stale-before mark; every stored object will be revalidated");
                    millis(SystemTime::now())
                }
            },
        };
        Self {
            ms: AtomicU64::new(ms),
            file,
        }
    }

    /// Makes everything stored before `now` stale, and saves that before
    /// returning. A failed save is returned: the caller must not record a
    /// feed position the mark does not cover.
    pub fn mark(&self, now: SystemTime) -> std::io::Result<()> {
        let ms = millis(now).max(1);
        let ms = self.ms.fetch_max(ms, Ordering::Relaxed).max(ms);
        let Some(file) = &self.file else {
            return Ok(());
        };
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, format!("{ms}\n"))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, file)
    }

    /// Soft-purges `obj` (at the mark) if it was stored before the mark.
    pub fn apply(&self, obj: &CachedObject) {
        let ms = self.ms.load(Ordering::Relaxed);
        if ms != 0 && millis(obj.meta.response_time) < ms {
            obj.soft_purge(UNIX_EPOCH + Duration::from_millis(ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_survives_a_restart_and_garbage_means_now() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            StaleEpoch::load(Some(dir.path()))
                .ms
                .load(Ordering::Relaxed),
            0
        );
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        StaleEpoch::load(Some(dir.path())).mark(at).unwrap();
        let reopened = StaleEpoch::load(Some(dir.path()));
        assert_eq!(reopened.ms.load(Ordering::Relaxed), millis(at));
        std::fs::write(dir.path().join(FILE), "x").unwrap();
        let before = millis(SystemTime::now());
        assert!(
            StaleEpoch::load(Some(dir.path()))
                .ms
                .load(Ordering::Relaxed)
                >= before
        );
    }

    #[test]
    fn the_mark_never_moves_back() {
        let epoch = StaleEpoch::load(None);
        let later = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        epoch.mark(later).unwrap();
        epoch.mark(UNIX_EPOCH + Duration::from_secs(1)).unwrap();
        assert_eq!(epoch.ms.load(Ordering::Relaxed), millis(later));
    }
}
