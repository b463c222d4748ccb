//! `[blob_gc]`: when blobs no asset or plugin points at any more are
//! deleted from this region's store.
//!
//! ```toml
//! [blob_gc]
//! interval = "1h"   # "0s" turns collection off
//! grace = "24h"     # a blob younger than this is never collected
//! ```
//!
//! A blob is written before the command that points at it commits, and a
//! region may briefly lag behind the commands other regions applied, so
//! only blobs older than `grace` are candidates: it must exceed the longest
//! upload plus the longest time a region runs behind while still healthy.

use std::time::Duration;

use serde::Deserialize;
use service_base::config_file::FieldError;

/// Validated collection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobGc {
    /// Time between passes; `None` turns collection off.
    pub interval: Option<Duration>,
    pub grace: Duration,
}

impl BlobGc {
    pub const DEFAULT: BlobGc = BlobGc {
        interval: Some(Duration::from_secs(3600)),
        grace: Duration::from_secs(24 * 3600),
    };
    /// The shortest grace a config file may set.
    pub const MIN_GRACE: Duration = Duration::from_secs(600);
}

impl Default for BlobGc {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlobGc {
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    grace: Option<Duration>,
}

impl RawBlobGc {
    pub(super) fn validate(self) -> Result<BlobGc, FieldError> {
        let interval = match self.interval {
            None => BlobGc::DEFAULT.interval,
            Some(d) if d.is_zero() => None,
            Some(d) if d < Duration::from_secs(60) => {
                return Err(FieldError::new(
                    "blob_gc.interval",
                    "must be at least 1m (each pass lists the whole blob store), or \"0s\" for off",
                ));
            }
            Some(d) => Some(d),
        };
        let grace = self.grace.unwrap_or(BlobGc::DEFAULT.grace);
        if grace < BlobGc::MIN_GRACE {
            return Err(FieldError::new(
                "blob_gc.grace",
                "must be at least 10m: a blob is stored before the write that points at it commits",
            ));
        }
        Ok(BlobGc { interval, grace })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` as the `[blob_gc]` section of an origin config file: the
    /// value, or the field the error names.
    fn parse(text: &str) -> Result<BlobGc, String> {
        let file = format!("data_dir = \"/x\"\ntoken = \"t0123456789\"\n[blob_gc]\n{text}");
        match crate::Config::parse(std::path::Path::new("origin.toml"), &file) {
            Ok(c) => Ok(c.blob_gc),
            Err(service_base::config_file::ConfigError::Invalid { field, .. }) => Err(field),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_off_and_limits() {
        assert_eq!(parse("").unwrap(), BlobGc::DEFAULT);
        assert_eq!(parse("interval = \"0s\"").unwrap().interval, None);
        assert_eq!(parse("interval = \"5s\"").unwrap_err(), "blob_gc.interval");
        assert_eq!(parse("grace = \"1m\"").unwrap_err(), "blob_gc.grace");
        assert_eq!(
            parse("grace = \"2h\"").unwrap().grace,
            Duration::from_secs(7200)
        );
    }
}
