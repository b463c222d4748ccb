//! A blob's bytes as a response body, checked on the way out and repaired
//! from a peer when this region's copy is missing or damaged.
//!
//! Assets and plugins both point at content-addressed blobs whose SHA-256
//! and size the replicated metadata holds, so a local copy can be judged:
//!
//! - missing: fetched from a peer before answering;
//! - wrong size (truncated, padded): seen from the object's metadata before
//!   a byte is sent; the copy is quarantined and refetched at once, so this
//!   request still succeeds;
//! - right size, wrong bytes: only a full download can tell, at its end
//!   ([`crate::store::verify`]); that response is aborted, the copy is
//!   quarantined, and the next read refetches it. Range requests are not
//!   hashed (a part cannot be checked against the whole's address).
//!
//! A quarantined copy is moved aside, not deleted ([`Blobs::quarantine`]),
//! and deleted only once a good copy is back at its address: with a bucket
//! shared by every region, no peer may have another copy.
//!
//! Each damaged copy is counted in `origin_blob_corrupt_total{kind}` and
//! logged with its key and what happens next.

use std::ops::Range;
use std::sync::Arc;

use futures::TryStreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::AppState;
use crate::metrics::{CorruptLabels, FetchLabels};
use crate::peers::Fetched;
use crate::response::{self, ResBody};
use crate::store::Blobs;
use crate::store::verify::Verified;

/// The bytes of blob `sha256` (`size` bytes long) in `range`, or the whole
/// blob, hash-checked; `what` names the asset or plugin in log lines.
#[allow(clippy::result_large_err)]
pub async fn open(
    state: &Arc<AppState>,
    what: &str,
    sha256: &str,
    size: u64,
    range: Option<Range<u64>>,
) -> Result<ResBody, Response<ResBody>> {
    let mut refetched = false;
    loop {
        match state.store.blobs.get_stream(sha256, range.clone()).await {
            Ok(blob) if blob.stored_size == size => {
                let body = match range {
                    Some(_) => StreamBody::new(blob.stream.map_ok(Frame::data).map_err(Into::into))
                        .boxed_unsync(),
                    None => {
                        let checked = Verified::new(blob.stream, sha256, {
                            let (state, what, sha) =
                                (state.clone(), what.to_string(), sha256.to_string());
                            move |_| hash_mismatch(state, what, sha)
                        });
                        StreamBody::new(checked.map_ok(Frame::data)).boxed_unsync()
                    }
                };
                return Ok(body);
            }
            Ok(blob) => wrong_size(state, what, sha256, size, blob.stored_size, refetched).await?,
            Err(object_store::Error::NotFound { .. }) if !refetched => {}
            // A range past the end of a truncated copy fails to open: ask
            // the store how long the copy really is.
            Err(e) if range.is_some() => match state.store.blobs.stored_size(sha256).await {
                Ok(stored) if stored != size => {
                    wrong_size(state, what, sha256, size, stored, refetched).await?
                }
                _ => return Err(response::internal("reading a blob failed", &e)),
            },
            Err(e) => return Err(response::internal("reading a blob failed", &e)),
        }
        fetch_from_peers(state, sha256).await?;
        refetched = true;
        match state.store.blobs.clear_quarantine(sha256).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                what,
                sha256,
                deleted = n,
                "a good copy is back from a peer; deleted the quarantined damaged copies"
            ),
            Err(e) => {
                tracing::warn!(what, sha256, error = %e, "could not delete quarantined copies of a repaired blob (they stay under quarantine/)")
            }
        }
    }
}

/// Handles a copy whose stored length is not the metadata's: quarantines it so
/// the caller refetches it, unless it was just fetched (then the metadata
/// is what is wrong, and refetching again would loop).
#[allow(clippy::result_large_err)]
async fn wrong_size(
    state: &AppState,
    what: &str,
    sha256: &str,
    size: u64,
    stored: u64,
    refetched: bool,
) -> Result<(), Response<ResBody>> {
    count(state, "size");
    if refetched {
        tracing::error!(
            what,
            sha256,
            expected = size,
            stored,
            "a freshly fetched blob disagrees with its metadata's size; not serving it"
        );
        return Err(response::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stored size of this object disagrees with its metadata; the origin logged it",
        ));
    }
    tracing::error!(
        what,
        key = %Blobs::key(sha256),
        expected = size,
        stored,
        "local blob has the wrong size: quarantining it and refetching it from a peer now"
    );
    quarantine(state, sha256)
        .await
        .map_err(|e| response::internal("quarantining a damaged blob failed", &e))
}

/// Moves a damaged copy aside, logging where it went.
async fn quarantine(state: &AppState, sha256: &str) -> Result<(), object_store::Error> {
    if let Some(aside) = state.store.blobs.quarantine(sha256).await? {
        tracing::warn!(
            sha256,
            quarantined = aside,
            "damaged blob moved aside; it is deleted once a good copy is fetched from a peer, and kept if none can be"
        );
    }
    Ok(())
}

/// Runs when a full download's bytes did not hash to `sha256`: the client's
/// transfer is being aborted; drop the copy so the next read refetches it.
fn hash_mismatch(state: Arc<AppState>, what: String, sha256: String) {
    count(&state, "hash");
    tracing::error!(
        what, key = %Blobs::key(&sha256),
        "local blob does not hash to its address: aborted the download, quarantining the copy; \
         the next read refetches it from a peer"
    );
    tokio::spawn(async move {
        if let Err(e) = quarantine(&state, &sha256).await {
            tracing::error!(key = %Blobs::key(&sha256), error = %e, "quarantining a damaged blob failed");
        }
    });
}

fn count(state: &AppState, kind: &'static str) {
    state
        .metrics
        .blob_corrupt
        .get_or_create(&CorruptLabels { kind })
        .inc();
}

/// Pulls a blob this region lacks from the other regions.
#[allow(clippy::result_large_err)]
async fn fetch_from_peers(state: &AppState, sha256: &str) -> Result<(), Response<ResBody>> {
    let status = state.replica.status();
    let addrs: Vec<String> = status
        .members
        .into_iter()
        .filter(|m| m.id != status.node_id)
        .map(|m| m.addr)
        .collect();
    let result = state
        .peers
        .fetch_blob(&state.store.blobs, sha256, &addrs)
        .await;
    let label = match &result {
        Ok(Fetched::Ok) => "ok",
        Ok(Fetched::HadCorrupt) => "corrupt",
        Err(_) => "failed",
    };
    state
        .metrics
        .blob_peer_fetches
        .get_or_create(&FetchLabels { result: label })
        .inc();
    result.map(|_| ()).map_err(|e| {
        tracing::error!(error = %e, "blob missing in this region and no peer supplied it");
        response::text(
            StatusCode::BAD_GATEWAY,
            "this region lacks the bytes and no other region could supply them; retry later",
        )
    })
}
