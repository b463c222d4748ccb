//! Deleting blobs no asset or plugin points at any more, and uploads that
//! were abandoned, from this region's store (`[blob_gc]`).
//!
//! Replacing or deleting an asset drops only its metadata, so without this
//! a store grows by every version ever uploaded. Each region collects its
//! own store against the replicated state, and only when that state is
//! current: a pass starts with a read-index round and is skipped unless
//! this region has applied everything the leader committed, so a region
//! that lags (or is cut off) never judges by references it has not seen.
//! A candidate must also be older than `grace` (a blob is written before
//! the write that points at it commits), is checked again just before it
//! is deleted (its age from the store, which an upload of the same bytes
//! resets, and its references), and deletions are one at a time so a pass
//! never holds the state lock or a burst of store requests.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::config::BlobGc;
use crate::listen::Stop;
use crate::metrics::{GcLabels, Metrics};
use crate::raft::Replica;
use crate::store::{Area, Blobs, Listed};

/// How long the read-index round that opens a pass may take.
const CURRENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub scanned: u64,
    pub deleted: u64,
    pub freed_bytes: u64,
    /// Unreferenced, but younger than the grace period.
    pub young: u64,
    /// Abandoned uploads deleted.
    pub uploads_deleted: u64,
}

/// Why a pass did not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(
        "this region is not current (no leader reachable, or {lag} committed entries not applied yet); skipped, retrying next interval"
    )]
    NotCurrent { lag: u64 },
    #[error("listing or deleting in the blob store failed: {0}")]
    Store(#[from] object_store::Error),
}

/// Runs a pass every `settings.interval` until the server stops (either
/// way: a killed region must not wait for its collector).
pub fn spawn(
    settings: BlobGc,
    blobs: Blobs,
    replica: Replica,
    metrics: Arc<Metrics>,
    stop: Stop,
) -> Option<JoinHandle<()>> {
    let interval = settings.interval?;
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.graceful.cancelled() => return,
                () = stop.kill.cancelled() => return,
            }
            // A pass over a large store can take minutes; stopping must not
            // wait for it (each delete is re-checked, so an interrupted pass
            // leaves nothing half-done).
            let result = tokio::select! {
                r = pass(&blobs, &replica, settings.grace, SystemTime::now()) => r,
                () = stop.graceful.cancelled() => return,
                () = stop.kill.cancelled() => return,
            };
            let label = match &result {
                Ok(report) => {
                    if report.deleted + report.uploads_deleted > 0 {
                        tracing::info!(
                            scanned = report.scanned,
                            deleted = report.deleted,
                            freed_bytes = report.freed_bytes,
                            uploads_deleted = report.uploads_deleted,
                            young = report.young,
                            "blob collection deleted blobs nothing points at"
                        );
                    }
                    metrics
                        .blob_gc_deleted
                        .inc_by(report.deleted + report.uploads_deleted);
                    metrics.blob_gc_freed_bytes.inc_by(report.freed_bytes);
                    "ok"
                }
                Err(e @ GcError::NotCurrent { .. }) => {
                    tracing::info!(error = %e, "blob collection skipped");
                    "skipped"
                }
                Err(e) => {
                    tracing::warn!(error = %e, "blob collection failed; retrying next interval (check the store's permissions and reachability)");
                    "failed"
                }
            };
            metrics
                .blob_gc_runs
                .get_or_create(&GcLabels { result: label })
                .inc();
        }
    }))
}

/// One pass at `now`: see the module comment for what makes it safe.
pub async fn pass(
    blobs: &Blobs,
    replica: &Replica,
    grace: Duration,
    now: SystemTime,
) -> Result<Report, GcError> {
    let commit = match tokio::time::timeout(CURRENT_TIMEOUT, replica.read_index()).await {
        Ok(Ok(commit)) => commit,
        Ok(Err(_)) | Err(_) => return Err(GcError::NotCurrent { lag: 0 }),
    };
    let lag = commit.saturating_sub(replica.state.applied_index());
    if lag > 0 {
        return Err(GcError::NotCurrent { lag });
    }
    let old = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age >= grace);
    let referenced = |sha: &str| replica.state.read(|s| s.references_blob(sha));
    let mut report = Report::default();
    let mut listing = blobs.list(Area::Blobs);
    while let Some(listed) = listing.next().await {
        let listed = listed?;
        report.scanned += 1;
        let Some(sha) = listed.sha256.as_deref() else {
            continue;
        };
        if referenced(sha) {
            continue;
        }
        if !old(listed.last_modified) {
            report.young += 1;
            continue;
        }
        if still_collectable(blobs, &listed, &old).await? && !referenced(sha) {
            blobs.delete_listed(&listed).await?;
            report.deleted += 1;
            report.freed_bytes += listed.size;
        }
    }
    let mut uploads = blobs.list(Area::Uploads);
    while let Some(listed) = uploads.next().await {
        let listed = listed?;
        if old(listed.last_modified) && still_collectable(blobs, &listed, &old).await? {
            tracing::info!(
                key = listed.key(),
                "deleting an upload abandoned before it completed"
            );
            blobs.delete_listed(&listed).await?;
            report.uploads_deleted += 1;
        }
    }
    Ok(report)
}

/// Whether `listed` is still there and still old, asked of the store now.
async fn still_collectable(
    blobs: &Blobs,
    listed: &Listed,
    old: &impl Fn(SystemTime) -> bool,
) -> Result<bool, GcError> {
    Ok(blobs.last_modified(listed).await?.is_some_and(old))
}
