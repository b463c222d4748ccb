//! Which blobs the replicated state points at, and at what size.
//!
//! A content address has exactly one size. The state machine refuses a
//! command that records a blob other entries already record at another
//! size: serving it would find the stored copy "damaged" and delete the
//! copy the other entries still serve (see `routes::blob_body`). The index
//! is derived from the assets and plugins, never stored: it is rebuilt
//! whenever a state is loaded.

use std::collections::BTreeMap;

/// Blob address → its size and how many entries point at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobRefs(BTreeMap<String, BlobRef>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlobRef {
    size: u64,
    refs: u64,
}

impl BlobRefs {
    /// The index of every `(sha256, size)` in `entries`.
    pub fn build<'a>(entries: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut refs = Self::default();
        for (sha256, size) in entries {
            refs.add(sha256, size);
        }
        refs
    }

    /// The size entries record for blob `sha256`, if any entry points at it.
    pub fn size_of(&self, sha256: &str) -> Option<u64> {
        self.0.get(sha256).map(|r| r.size)
    }

    /// One more entry points at `sha256`. The caller checked the size with
    /// [`BlobRefs::size_of`]; the first recorded size stays.
    pub fn add(&mut self, sha256: &str, size: u64) {
        self.0
            .entry(sha256.to_string())
            .and_modify(|r| r.refs += 1)
            .or_insert(BlobRef { size, refs: 1 });
    }

    /// One entry fewer points at `sha256`.
    pub fn remove(&mut self, sha256: &str) {
        if let Some(r) = self.0.get_mut(sha256) {
            r.refs -= 1;
            if r.refs == 0 {
                self.0.remove(sha256);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_references_until_the_last_goes() {
        let mut refs = BlobRefs::build([("a", 3), ("a", 3), ("b", 5)]);
        assert_eq!(refs.size_of("a"), Some(3));
        refs.remove("a");
        assert_eq!(refs.size_of("a"), Some(3));
        refs.remove("a");
        assert_eq!(refs.size_of("a"), None);
        refs.remove("a");
        assert_eq!(refs.size_of("b"), Some(5));
    }
}
