//! Putting a new upload's blob on a majority of voting regions before its
//! metadata is committed.
//!
//! Raft makes the metadata survive the loss of any minority of regions, but
//! the blob it points at is stored only where it was uploaded; if that
//! region were lost before another one read the asset, an acknowledged
//! upload would point at bytes nobody has. So before a `PutAsset` or
//! `PutPlugin` is proposed, the blob is pushed to the other voters (each
//! verifies the SHA-256 while storing) until a majority holds it, counting
//! this region's own durable copy.
//!
//! A peer that already has a copy of the right size is not sent the bytes
//! again. That is also what makes a bucket shared by all regions cost one
//! `HEAD` per peer and nothing more: each peer finds the blob already there.
//! Pushes still running when the majority is reached are left to finish, so
//! the remaining regions get their copy now instead of on first read.

use std::time::Duration;

use tokio::sync::mpsc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::PeerClient;
use super::http::error_text;
use crate::metrics::PushLabels;
use crate::raft::{NodeId, Replica};
use crate::store::{Blobs, StoredBlob};

/// The header in which `HEAD /internal/blobs/{sha256}` states the stored
/// size (a HEAD response's `Content-Length` may be rewritten by HTTP
/// layers).
pub use waypost_api::headers::BLOB_SIZE as BLOB_SIZE_HEADER;

/// A push may take this long plus [`PUSH_SLOWEST_RATE`]'s time for the
/// bytes before the peer counts as not holding the blob.
const PUSH_BASE_DEADLINE: Duration = Duration::from_secs(10);
/// Bytes per second below which a push is given up.
const PUSH_SLOWEST_RATE: u64 = 1024 * 1024;

/// How long pushing `size` bytes may take: a peer that hangs must not hold
/// an upload forever, a large blob on a slow link must not be cut short.
fn push_deadline(size: u64) -> Duration {
    PUSH_BASE_DEADLINE + Duration::from_secs(size / PUSH_SLOWEST_RATE)
}

/// How a peer came to hold the blob.
enum Pushed {
    Sent,
    /// It already had a copy of the right size; nothing was sent.
    Present,
}

/// Why one peer did not confirm a copy.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("could not reach it: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("it answered {status}: {message}")]
    Refused {
        status: reqwest::StatusCode,
        message: String,
    },
    #[error("reading the local copy failed: {0}")]
    Local(#[from] object_store::Error),
}

/// Fewer than a majority of voters confirmed a copy of the blob.
#[derive(Debug, thiserror::Error)]
#[error(
    "the upload ({sha256}) is stored in this region, but only {have} of {voters} voting regions \
     hold a copy and {need} must before it is acknowledged, so nothing was committed; \
     {failures}. Check that the other regions are up and reachable (GET /cluster), then retry \
     the upload"
)]
pub struct NoBlobMajority {
    pub sha256: String,
    pub have: usize,
    pub need: usize,
    pub voters: usize,
    /// One line per peer that did not confirm, joined for the message.
    pub failures: String,
}

impl PeerClient {
    /// Returns once a majority of the current voters holds `blob` (which
    /// must already be durable in `blobs`), pushing it to the others and
    /// counting each push's outcome in `pushes`.
    pub async fn ensure_majority_holds(
        &self,
        replica: &Replica,
        blobs: &Blobs,
        blob: &StoredBlob,
        pushes: &Family<PushLabels, Counter>,
    ) -> Result<(), NoBlobMajority> {
        let status = replica.status();
        let voters: Vec<(NodeId, String)> = status
            .members
            .into_iter()
            .filter(|m| m.voter)
            .map(|m| (m.id, m.addr))
            .collect();
        let need = voters.len() / 2 + 1;
        let mut have = usize::from(voters.iter().any(|(id, _)| *id == status.node_id));
        if have >= need {
            return Ok(());
        }
        let (tx, mut results) = mpsc::channel(voters.len());
        for (id, addr) in voters.iter().filter(|(id, _)| *id != status.node_id) {
            let (client, blobs, tx) = (self.clone(), blobs.clone(), tx.clone());
            let (id, addr, blob) = (*id, addr.clone(), blob.clone());
            let pushes = pushes.clone();
            tokio::spawn(async move {
                let pushed = client.push_blob(&blobs, &addr, &blob).await;
                let result = match &pushed {
                    Ok(Pushed::Sent) => "sent",
                    Ok(Pushed::Present) => "present",
                    Err(_) => "failed",
                };
                pushes.get_or_create(&PushLabels { result }).inc();
                let _ = tx.send((id, addr, pushed)).await;
            });
        }
        drop(tx);
        let mut failures = Vec::new();
        while let Some((id, addr, pushed)) = results.recv().await {
            match pushed {
                Ok(_) => have += 1,
                Err(e) => {
                    tracing::warn!(peer = id, %addr, sha256 = %blob.sha256, error = %e,
                        "a region did not take a copy of an uploaded blob");
                    failures.push(format!("region {id} at {addr}: {e}"));
                }
            }
            if have >= need {
                return Ok(());
            }
        }
        Err(NoBlobMajority {
            sha256: blob.sha256.clone(),
            have,
            need,
            voters: voters.len(),
            failures: failures.join("; "),
        })
    }

    /// Makes sure the region at `addr` holds `blob`: asks first, and sends
    /// the bytes only when it lacks a copy of the right size.
    async fn push_blob(
        &self,
        blobs: &Blobs,
        addr: &str,
        blob: &StoredBlob,
    ) -> Result<Pushed, PushError> {
        let path = format!("/internal/blobs/{}", blob.sha256);
        let head = self
            .http
            .request(reqwest::Method::HEAD, addr, &path)
            .send()
            .await
            .map_err(PushError::Unreachable)?;
        let stored_size = head
            .headers()
            .get(BLOB_SIZE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if head.status().is_success() && stored_size == Some(blob.size) {
            return Ok(Pushed::Present);
        }
        let local = blobs.get_stream(&blob.sha256, None).await?;
        let response = self
            .push_http
            .request(reqwest::Method::PUT, addr, &path)
            .timeout(push_deadline(blob.size))
            .header(reqwest::header::CONTENT_LENGTH, blob.size)
            .body(reqwest::Body::wrap_stream(local.stream))
            .send()
            .await
            .map_err(PushError::Unreachable)?;
        if response.status().is_success() {
            return Ok(Pushed::Sent);
        }
        Err(PushError::Refused {
            status: response.status(),
            message: error_text(response).await,
        })
    }
}
