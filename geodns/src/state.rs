//! One loaded configuration with everything compiled from it. Queries read
//! the current snapshot through an `ArcSwap`; a reload builds a new one off
//! to the side and swaps it in, so a bad config never replaces a good one.

use std::sync::Arc;
use std::time::SystemTime;

use crate::Error;
use crate::config::Config;
use crate::geo::GeoMap;
use crate::health::Health;
use crate::zone::Zones;

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub zones: Zones,
    pub geo: GeoMap,
    pub health: Arc<Health>,
    /// Modification times of the config file and database when loaded, so
    /// the watcher can tell a change.
    pub stamps: Stamps,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stamps {
    pub config: Option<SystemTime>,
    pub database: Option<SystemTime>,
}

impl Stamps {
    pub fn of(config: &Config) -> Self {
        let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Self {
            config: config.source.as_deref().and_then(mtime),
            database: config.geoip.database.as_deref().and_then(mtime),
        }
    }
}

impl Snapshot {
    /// Compiles `config`; endpoints that exist in `previous` keep their
    /// health state, so a reload does not send traffic to a dead region.
    pub fn build(config: Config, previous: Option<&Snapshot>) -> Result<Self, Error> {
        let stamps = Stamps::of(&config);
        let geo = GeoMap::build(&config)?;
        let health = Health::new(&config);
        if let Some(previous) = previous {
            health.inherit(&config, &previous.config, &previous.health);
        }
        Ok(Self {
            zones: Zones::new(&config.zones),
            geo,
            health: Arc::new(health),
            stamps,
            config,
        })
    }
}
