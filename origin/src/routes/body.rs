//! Reading request bodies: small ones (JSON, KV values) with a size cap,
//! uploads (assets, plugins) streamed into the blob store and copied to a
//! majority of regions before they are committed.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::response::{self, ResBody};
use crate::store::{BlobWriteError, StoredBlob};

/// Reads the whole body, refusing more than `limit` bytes with 413.
#[allow(clippy::result_large_err)]
pub async fn read(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<ResBody>> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(response::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the {limit} bytes this endpoint accepts"),
        )),
        Err(e) => Err(response::text(
            StatusCode::BAD_REQUEST,
            format!("reading the request body failed: {e}"),
        )),
    }
}

/// Reads and parses a JSON body; 400 names what did not parse.
#[allow(clippy::result_large_err)]
pub async fn json<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, Response<ResBody>> {
    let bytes = read(req, limit).await?;
    parse_json(&bytes)
}

/// Parses a JSON body; the 400 names the field that failed.
#[allow(clippy::result_large_err)]
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Response<ResBody>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = match e.path().to_string() {
            path if path == "." => String::new(),
            path => format!(" at `{path}`"),
        };
        response::text(
            StatusCode::BAD_REQUEST,
            format!("the JSON body is not valid{at}: {}", e.inner()),
        )
    })
}

/// Reads a body from another region: CBOR, or JSON from an older origin
/// ([`crate::raft::wire`]); 400 names what did not parse.
#[allow(clippy::result_large_err)]
pub async fn rpc<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, Response<ResBody>> {
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = read(req, limit).await?;
    crate::raft::wire::decode(content_type.as_deref(), &bytes)
        .map_err(|e| response::text(StatusCode::BAD_REQUEST, e.to_string()))
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<ResBody> {
    let mut response = Response::new(response::full(
        serde_json::to_vec(value).expect("JSON serialises"),
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Streams an upload into the blob store, counting the bytes received; a
/// body that ends early is the client's 400, one over `max_upload_bytes`
/// its 413 (refused from `Content-Length` before a byte is stored, or cut
/// off when a body of unannounced length passes it), a store failure our
/// 500 naming `what` was being stored.
#[allow(clippy::result_large_err)]
pub async fn store_upload(
    state: &AppState,
    req: Request<Incoming>,
    what: &str,
) -> Result<StoredBlob, Response<ResBody>> {
    let limit = state.config.max_upload_bytes;
    let announced = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(upload_too_large(limit));
    }
    let received = state.metrics.bytes_received.clone();
    let body = limited(req, limit).into_data_stream();
    match state
        .store
        .blobs
        .put_stream(body, |n| {
            received.inc_by(n as u64);
        })
        .await
    {
        Ok(blob) => Ok(blob),
        Err(BlobWriteError::Body(e)) if e.is::<LengthLimitError>() => Err(upload_too_large(limit)),
        Err(BlobWriteError::Body(e)) => Err(response::text(
            StatusCode::BAD_REQUEST,
            format!("the upload body ended early ({e}); nothing was stored, retry the upload"),
        )),
        Err(e) => Err(response::internal(
            &format!("storing the {what} failed"),
            &e,
        )),
    }
}

/// The request body, failing with [`LengthLimitError`] past `limit` bytes.
pub fn limited(req: Request<Incoming>, limit: u64) -> Limited<Incoming> {
    Limited::new(
        req.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
}

/// 413 naming the setting that refused the upload.
pub fn upload_too_large(limit: u64) -> Response<ResBody> {
    response::text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is larger than max_upload_bytes = {limit} bytes (origin config); \
             nothing was stored"
        ),
    )
}

/// Makes sure a majority of voting regions holds an upload's blob before
/// the metadata pointing at it is proposed; otherwise 503 naming how many
/// did and which failed (nothing is committed, so retrying is safe).
#[allow(clippy::result_large_err)]
pub async fn hold_on_majority(
    state: &AppState,
    blob: &StoredBlob,
) -> Result<(), Response<ResBody>> {
    let held = state
        .peers
        .ensure_majority_holds(
            &state.replica,
            &state.store.blobs,
            blob,
            &state.metrics.blob_pushes,
        )
        .await;
    held.map_err(|e| {
        tracing::warn!(error = %e, "refusing an upload: too few regions hold its blob");
        let mut response = response::text(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        response
    })
}
