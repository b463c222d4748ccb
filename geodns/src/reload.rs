//! Reloading without a restart: on request (SIGHUP in the binary) and when
//! the config file or the database changes on disk. The new snapshot is
//! built beside the serving one; if anything is wrong the old one keeps
//! serving and the error is logged and counted.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::Error;
use crate::config::Config;
use crate::health;
use crate::metrics::{Metrics, ReloadLabels};
use crate::state::{Snapshot, Stamps};

/// How often the files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What a reload swaps: the snapshot and the health checkers that feed it.
#[derive(Debug)]
pub struct Reloader {
    pub state: Arc<ArcSwap<Snapshot>>,
    pub metrics: Arc<Metrics>,
    checks: Mutex<JoinSet<()>>,
    /// One reload at a time, in the order they were asked for (tokio's
    /// mutex is fair): a SIGHUP and a file change cannot finish out of
    /// order, and the last one reads the file last, so the latest wins.
    serial: Mutex<()>,
}

impl Reloader {
    pub fn new(state: Arc<ArcSwap<Snapshot>>, metrics: Arc<Metrics>) -> Self {
        let checks = {
            let current = state.load();
            health::spawn_checks(&current.config, current.health.clone(), metrics.clone())
        };
        Self {
            state,
            metrics,
            checks: Mutex::new(checks),
            serial: Mutex::new(()),
        }
    }

    /// Re-reads the config file the server was started from.
    pub async fn reload(&self) -> Result<(), Error> {
        let _one = self.serial.lock().await;
        let path = self
            .state
            .load()
            .config
            .source
            .clone()
            .ok_or(Error::NoSource)?;
        let result = match tokio::task::spawn_blocking(move || Config::load(&path)).await {
            Ok(Ok(config)) => self.apply_now(config).await,
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(Error::Reload(e.to_string())),
        };
        self.count(&result);
        result
    }

    /// Compiles `config` and serves it from now on; listen addresses stay
    /// as they were bound.
    pub async fn apply(&self, config: Config) -> Result<(), Error> {
        let _one = self.serial.lock().await;
        self.apply_now(config).await
    }

    async fn apply_now(&self, config: Config) -> Result<(), Error> {
        let previous = self.state.load_full();
        if config.dns != previous.config.dns || config.metrics != previous.config.metrics {
            tracing::warn!("listen addresses changed: they take effect on restart");
        }
        let snapshot =
            tokio::task::spawn_blocking(move || Snapshot::build(config, Some(&previous)))
                .await
                .map_err(|e| Error::Reload(e.to_string()))??;
        let mut checks = self.checks.lock().await;
        *checks = health::spawn_checks(
            &snapshot.config,
            snapshot.health.clone(),
            self.metrics.clone(),
        );
        self.state.store(Arc::new(snapshot));
        tracing::info!("configuration loaded");
        Ok(())
    }

    fn count(&self, result: &Result<(), Error>) {
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .reloads
            .get_or_create(&ReloadLabels { result: label })
            .inc();
        if let Err(error) = result {
            tracing::error!(%error, "reload failed; still serving the previous configuration");
        }
    }

    /// Reloads whenever the config file or the database changes; a file
    /// that stays broken is reported once per change, not every second.
    pub async fn watch(self: Arc<Self>) {
        let mut seen = self.state.load().stamps.clone();
        let mut ticker = tokio::time::interval(WATCH_INTERVAL);
        loop {
            ticker.tick().await;
            let now = Stamps::of(&self.state.load().config);
            if now != seen {
                seen = now;
                let _ = self.reload().await;
            }
        }
    }
}
