//! Large queue message bodies as blobs.
//!
//! A body over [`INLINE_BODY`] is stored like an upload (content-addressed,
//! on a majority of regions before the send is proposed) and the
//! replicated message holds only its [`BlobRef`]: the Raft log, snapshots
//! and every region's memory carry a few dozen bytes for it whatever its
//! size. Leases and peeks answer with the body itself, read from this
//! region's store (or a peer's, hash-checked), so producers and consumers
//! never see the difference.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use waypost_api::queues::{BlobRef, INLINE_BODY, InvalidQueueInput, NewMessage};

use super::{AppState, blob_body, body};
use crate::response::{self, ResBody};

/// Most bytes of bodies one send keeps in its Raft entry: past it the
/// largest bodies become blobs too, so a batch of many bodies just under
/// [`INLINE_BODY`] is still a small entry that crosses a slow link within
/// the append timeout.
const INLINE_BATCH: usize = 512 * 1024;

/// Refuses a reference sent by a client (only the origin makes them), then
/// keeps every body over [`INLINE_BODY`] as a blob held by a majority of
/// regions, and the largest others too while the inline bodies together
/// pass [`INLINE_BATCH`].
#[allow(clippy::result_large_err)]
pub async fn offload(
    state: &AppState,
    messages: &mut [NewMessage],
) -> Result<(), Response<ResBody>> {
    if let Some(i) = messages.iter().position(|m| m.blob.is_some()) {
        let e = InvalidQueueInput::BlobFromClient {
            field: format!("messages[{i}].blob"),
        };
        return Err(response::text(StatusCode::BAD_REQUEST, e.to_string()));
    }
    let mut by_size: Vec<usize> = (0..messages.len()).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(messages[i].body.len()));
    let mut inline: usize = messages.iter().map(|m| m.body.len()).sum();
    for i in by_size {
        let len = messages[i].body.len();
        if len <= INLINE_BODY && inline <= INLINE_BATCH {
            break;
        }
        inline -= len;
        let m = &mut messages[i];
        let bytes = Bytes::from(std::mem::take(&mut m.body));
        let chunks = futures::stream::iter([Ok::<_, std::io::Error>(bytes)]);
        let stored = match state.store.blobs.put_stream(chunks, |_| {}).await {
            Ok(stored) => stored,
            Err(e) => {
                return Err(response::internal(
                    "storing a large queue message body failed",
                    &e,
                ));
            }
        };
        body::hold_on_majority(state, &stored).await?;
        m.blob = Some(BlobRef {
            sha256: stored.sha256,
            size: stored.size,
        });
    }
    Ok(())
}

/// Puts the bytes of `blob` (if any) into `body`: what a consumer is
/// answered. A blob that no region can produce intact is our 500, and the
/// lease then simply ends (the message is delivered again later).
#[allow(clippy::result_large_err)]
pub async fn resolve(
    state: &Arc<AppState>,
    body: &mut String,
    blob: &mut Option<BlobRef>,
) -> Result<(), Response<ResBody>> {
    let Some(b) = blob.take() else {
        return Ok(());
    };
    let stream = blob_body::open(state, "a queue message body", &b.sha256, b.size, None).await?;
    let read = stream.collect().await.map(|c| c.to_bytes());
    let text = read
        .map_err(|e| e.to_string())
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string()));
    match text {
        Ok(text) => {
            *body = text;
            Ok(())
        }
        Err(e) => {
            tracing::error!(sha256 = %b.sha256, error = %e, "a large queue message body could not be read back");
            Err(response::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "a message body kept as a blob could not be read; the origin logged which",
            ))
        }
    }
}
