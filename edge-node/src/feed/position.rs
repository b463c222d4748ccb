//! Where the follower is in the feed, kept in the disk cache's directory:
//! the disk cache outlives a restart, so the position must too, or purges
//! made while the edge was down would never reach the objects it kept.

use std::path::{Path, PathBuf};

/// What was saved.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    At(u64),
    Nothing,
    /// A file exists but cannot be used: events may have been missed.
    Unreadable,
}

pub struct Position {
    file: Option<PathBuf>,
}

impl Position {
    /// With no disk cache there is nothing to protect across a restart.
    pub fn new(cache_dir: Option<&Path>) -> Self {
        Self {
            file: cache_dir.map(|d| d.join("feed-position")),
        }
    }

    /// The saved position. An unusable file is reported; the follower then
    /// treats the cache as possibly out of date.
    pub fn load(&self) -> Saved {
        let Some(file) = &self.file else {
            return Saved::Nothing;
        };
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Saved::Nothing,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read the change-feed position; the cache will be revalidated");
                return Saved::Unreadable;
            }
        };
        match text.trim().parse() {
            Ok(seq) => Saved::At(seq),
            Err(_) => {
                tracing::warn!(file = %file.display(), content = text.trim(), "the change-feed position is not a number; the cache will be revalidated");
                Saved::Unreadable
            }
        }
    }

    /// Saves `seq` atomically (write, then rename). A failure is logged: the
    /// follower keeps working, and a restart re-applies events at worst.
    pub fn save(&self, seq: u64) {
        let Some(file) = &self.file else {
            return;
        };
        let tmp = file.with_extension("tmp");
        let result =
            std::fs::write(&tmp, format!("{seq}\n")).and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = result {
            tracing::warn!(file = %file.display(), error = %e, "cannot save the change-feed position; after a restart some events are applied twice");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_ignores_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let position = Position::new(Some(dir.path()));
        assert_eq!(position.load(), Saved::Nothing);
        position.save(42);
        assert_eq!(position.load(), Saved::At(42));
        std::fs::write(dir.path().join("feed-position"), "x").unwrap();
        assert_eq!(position.load(), Saved::Unreadable);
        assert_eq!(Position::new(None).load(), Saved::Nothing);
    }
}
