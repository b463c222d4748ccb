//! `[feed]`: how much of the change feed the origin keeps, per event class.
//!
//! ```toml
//! [feed]
//! keep_events = 100000   # per class (content, kv)
//! keep_bytes = "32MiB"   # per class, JSON plus a fixed per-event overhead
//! ```
//!
//! An edge further behind than a class's window revalidates what depends
//! on that class (its cache for content, its KV read cache for kv), so the
//! windows trade origin memory (and snapshot size) for how long an edge can
//! be away cheaply. Keep them alike in every region: a reader that fails
//! over resumes against another region's window.

use serde::Deserialize;
use service_base::byte_size::ByteSize;
use service_base::config_file::FieldError;

use crate::raft::FeedRetention;

/// The most either limit may be: the windows are part of every snapshot.
const MAX_KEEP_BYTES: u64 = 1 << 30;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeed {
    keep_events: Option<usize>,
    keep_bytes: Option<ByteSize>,
}

impl RawFeed {
    pub fn validate(self) -> Result<FeedRetention, FieldError> {
        let events = self.keep_events.unwrap_or(FeedRetention::DEFAULT.events);
        let bytes = self
            .keep_bytes
            .map_or(FeedRetention::DEFAULT.bytes, |b| b.0);
        if events == 0 {
            return Err(FieldError::new(
                "feed.keep_events",
                "must be at least 1: edges resume from the events kept",
            ));
        }
        if !(64 << 10..=MAX_KEEP_BYTES).contains(&bytes) {
            return Err(FieldError::new(
                "feed.keep_bytes",
                format!("must be between 64KiB and 1GiB, got {bytes} bytes"),
            ));
        }
        Ok(FeedRetention { events, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` as the `[feed]` section of an origin config file: the
    /// value, or the field the error names.
    fn parse(text: &str) -> Result<FeedRetention, String> {
        let file = format!("data_dir = \"/x\"\ntoken = \"t0123456789\"\n[feed]\n{text}");
        match crate::Config::parse(std::path::Path::new("origin.toml"), &file) {
            Ok(c) => Ok(c.feed),
            Err(service_base::config_file::ConfigError::Invalid { field, .. }) => Err(field),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_and_limits() {
        assert_eq!(parse("").unwrap(), FeedRetention::DEFAULT);
        let r = parse("keep_events = 5\nkeep_bytes = \"1MiB\"").unwrap();
        assert_eq!((r.events, r.bytes), (5, 1 << 20));
        assert_eq!(parse("keep_events = 0").unwrap_err(), "feed.keep_events");
        assert_eq!(parse("keep_bytes = 100").unwrap_err(), "feed.keep_bytes");
    }
}
