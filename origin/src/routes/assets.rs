//! `/assets/{name}`: upload, download (with conditional and range requests)
//! and delete.
//!
//! The asset index is replicated (a write is acknowledged once a majority
//! of regions holds it); the blob is stored durably in the region that took
//! the upload and copied to a majority of regions before the index entry is
//! proposed, so losing any minority loses neither; the other regions fetch
//! it on first read. Deleting or replacing
//! an asset drops only its index entry; the blob stays until blob GC exists
//! (see [`crate::store::blobs`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::auth;
use super::{AppState, blob_body, body, query, write_failed};
use crate::credentials::Scope;
use crate::http_cond::{self, Precondition, Validators};
use crate::raft::{Command, Conditions};
use crate::response::{self, ResBody};
use crate::store::{AssetMeta, meta};
use service_base::byte_range::ByteRange;
use waypost_api::AssetPath;

/// The header that lists an asset's surrogate keys, for purge by key.
const SURROGATE_KEY: &str = "surrogate-key";

/// GET and HEAD.
pub async fn get(
    state: &Arc<AppState>,
    raw_name: &str,
    req: &Request<Incoming>,
) -> Response<ResBody> {
    let path = match AssetPath::from_url_path(raw_name) {
        Ok(p) => p,
        Err(e) => return response::text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if query::strong(req.uri())
        && let Err(e) = state.replica.sync_for_read().await
    {
        return write_failed(&e);
    }
    let Some(meta) = lookup(state, &path) else {
        return not_found(&path);
    };
    let validators = Validators::new(&meta.sha256, meta.last_modified);
    let headers = req.headers();
    let method = req.method();
    match http_cond::evaluate(headers, method, Some(&validators)) {
        Precondition::Proceed => {}
        Precondition::NotModified => return not_modified(state, &path, &meta),
        Precondition::Failed => return precondition_failed(),
    }
    let mut response = Response::new(response::empty());
    set_representation_headers(state, &path, &meta, response.headers_mut());
    let range = match http_cond::select_range(headers, method, &validators, meta.size) {
        ByteRange::Full => {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, meta.size.into());
            None
        }
        ByteRange::Partial { start, end } => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let content_range = ByteRange::content_range(start, end, meta.size);
            let h = response.headers_mut();
            h.insert(header::CONTENT_LENGTH, (end - start + 1).into());
            h.insert(header::CONTENT_RANGE, header_value(&content_range));
            Some(start..end + 1)
        }
        ByteRange::Unsatisfiable => {
            let mut response = response::text(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("range not satisfiable: the asset is {} bytes", meta.size),
            );
            let content_range = ByteRange::unsatisfied_range(meta.size);
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, header_value(&content_range));
            return response;
        }
    };
    if method == Method::HEAD || meta.size == 0 {
        return response;
    }
    match blob_body::open(state, path.as_str(), &meta.sha256, meta.size, range).await {
        Ok(body) => {
            *response.body_mut() = body;
            response
        }
        Err(response) => response,
    }
}

/// The asset's replicated index entry.
fn lookup(state: &AppState, path: &AssetPath) -> Option<AssetMeta> {
    state
        .replica
        .state
        .read(|s| s.assets.get(path.as_str()).cloned())
}

/// PUT: stream the body into a blob, then point the metadata at it.
pub async fn put(
    state: &Arc<AppState>,
    raw_name: &str,
    req: Request<Incoming>,
) -> Response<ResBody> {
    if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Write,
        "uploading an asset",
    ) {
        return denied;
    }
    let path = match AssetPath::from_url_path(raw_name) {
        Ok(p) => p,
        Err(e) => return response::text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let upload = match UploadHeaders::read(req.headers(), &path) {
        Ok(u) => u,
        Err(e) => return response::text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    // Checked here against this region's copy to refuse early, before the
    // body is read; decided for good by the state machine on the version
    // current at commit (a concurrent writer may get there first).
    let previous = lookup(state, &path);
    let validators = previous
        .as_ref()
        .map(|m| Validators::new(&m.sha256, m.last_modified));
    if http_cond::evaluate(req.headers(), req.method(), validators.as_ref())
        != Precondition::Proceed
    {
        return precondition_failed();
    }
    let precondition = Conditions::from_headers(req.headers(), true);

    let blob = match body::store_upload(state, req, "upload").await {
        Ok(blob) => blob,
        Err(response) => return response,
    };
    if let Err(response) = body::hold_on_majority(state, &blob).await {
        return response;
    }

    // The state machine keeps the previous Last-Modified when the bytes did
    // not change, so caches holding the old copy still validate.
    let meta = AssetMeta {
        format: meta::FORMAT,
        sha256: blob.sha256,
        size: blob.size,
        content_type: upload.content_type,
        cache_control: upload.cache_control,
        surrogate_keys: upload.surrogate_keys,
        last_modified: unix_now(),
    };
    let etag = header_value(&format!("\"{}\"", meta.sha256));
    let command = Command::PutAsset {
        path: path.as_str().to_string(),
        meta,
        precondition,
    };
    let outcome = match state.write(command).await {
        Ok(outcome) => outcome,
        Err(e) => return write_failed(&e),
    };
    let mut response = Response::new(response::empty());
    if !outcome.existed {
        *response.status_mut() = StatusCode::CREATED;
        let location = format!("/assets/{raw_name}");
        response
            .headers_mut()
            .insert(header::LOCATION, header_value(&location));
    } else {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response.headers_mut().insert(header::ETAG, etag);
    response
}

/// DELETE: drop the asset's metadata.
pub async fn delete(
    state: &Arc<AppState>,
    raw_name: &str,
    req: &Request<Incoming>,
) -> Response<ResBody> {
    if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Write,
        "deleting an asset",
    ) {
        return denied;
    }
    let path = match AssetPath::from_url_path(raw_name) {
        Ok(p) => p,
        Err(e) => return response::text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let command = Command::DeleteAsset {
        path: path.as_str().to_string(),
    };
    match state.write(command).await {
        Ok(outcome) if outcome.existed => {
            let mut response = Response::new(response::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Ok(_) => not_found(&path),
        Err(e) => write_failed(&e),
    }
}

/// An upload header that is not text; the message is the 400 body.
#[derive(Debug, thiserror::Error)]
#[error("the {0} header must be visible ASCII")]
struct NotText(header::HeaderName);

/// What the uploader said about the asset, validated before the body is read.
struct UploadHeaders {
    content_type: String,
    cache_control: Option<String>,
    surrogate_keys: Vec<String>,
}

impl UploadHeaders {
    fn read(headers: &HeaderMap, path: &AssetPath) -> Result<Self, NotText> {
        let text = |name: header::HeaderName| -> Result<Option<String>, NotText> {
            match headers.get(&name).map(|v| v.to_str()) {
                None => Ok(None),
                Some(Ok(s)) => Ok(Some(s.trim().to_string())),
                Some(Err(_)) => Err(NotText(name)),
            }
        };
        let content_type = match text(header::CONTENT_TYPE)? {
            Some(ct) if !ct.is_empty() => ct,
            _ => mime_guess::from_path(path.as_str())
                .first_raw()
                .unwrap_or("application/octet-stream")
                .to_string(),
        };
        let cache_control = text(header::CACHE_CONTROL)?.filter(|cc| !cc.is_empty());
        let surrogate_keys = text(header::HeaderName::from_static(SURROGATE_KEY))?
            .map(|keys| keys.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        Ok(Self {
            content_type,
            cache_control,
            surrogate_keys,
        })
    }
}

/// Headers that describe the stored representation (200, 206, HEAD).
fn set_representation_headers(
    state: &AppState,
    path: &AssetPath,
    meta: &AssetMeta,
    h: &mut HeaderMap,
) {
    set_validator_headers(state, path, meta, h);
    h.insert(header::CONTENT_TYPE, header_value(&meta.content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if !meta.surrogate_keys.is_empty() {
        h.insert(SURROGATE_KEY, header_value(&meta.surrogate_keys.join(" ")));
    }
}

/// Headers a 304 must repeat (RFC 9110 §15.4.5): ETag, Cache-Control,
/// Last-Modified, Date.
fn set_validator_headers(state: &AppState, path: &AssetPath, meta: &AssetMeta, h: &mut HeaderMap) {
    h.insert(header::ETAG, header_value(&format!("\"{}\"", meta.sha256)));
    h.insert(
        header::LAST_MODIFIED,
        header_value(&http_date(meta.last_modified)),
    );
    let cache_control = meta
        .cache_control
        .as_deref()
        .unwrap_or_else(|| state.config.cache_control_for(&path.rule_path()));
    h.insert(header::CACHE_CONTROL, header_value(cache_control));
    h.insert(
        header::DATE,
        header_value(&httpdate::fmt_http_date(SystemTime::now())),
    );
}

fn not_modified(state: &AppState, path: &AssetPath, meta: &AssetMeta) -> Response<ResBody> {
    let mut response = Response::new(response::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    set_validator_headers(state, path, meta, response.headers_mut());
    response
}

fn precondition_failed() -> Response<ResBody> {
    response::text(
        StatusCode::PRECONDITION_FAILED,
        "a precondition (If-Match, If-Unmodified-Since or If-None-Match) is false for the current asset",
    )
}

fn not_found(path: &AssetPath) -> Response<ResBody> {
    response::text(
        StatusCode::NOT_FOUND,
        format!("no asset at /assets/{}; upload one with PUT", path.as_str()),
    )
}

fn http_date(unix_secs: u64) -> String {
    httpdate::fmt_http_date(http_cond::unix_time(unix_secs))
}

/// Values that came from our own store or config were validated on the way
/// in; one that still is not a header value is replaced rather than
/// failing the request.
fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
