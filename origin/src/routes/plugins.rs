//! `/plugins`: the plugin registry edges deploy from.
//!
//! - `PUT /plugins/{name}` (token): the body is a wasm module or component;
//!   it is stored as a content-addressed blob, copied to a majority of
//!   regions, and `{name, sha256, size}` is committed through Raft, which
//!   adds a `plugin_version` event to the change feed.
//! - `GET /plugins/{name}`: the current bytes, `ETag: "<sha256>"` and
//!   `x-waypost-plugin-sha256`; `If-None-Match` gives 304.
//! - `GET /plugins`: `{"<name>": "<sha256>", ...}`.
//! - `DELETE /plugins/{name}` (token): a `plugin_deleted` event.
//!
//! Edges follow the feed and fetch `GET /plugins/{name}` on each
//! `plugin_version` event, so that pair is a contract: event fields
//! `name`, `sha256`, `size`, and a GET that returns exactly those bytes.
//! Names follow DNS-label rules so they can appear in hostnames, paths and
//! metric labels unescaped.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use headers::{ETag, HeaderMapExt, IfNoneMatch};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::auth;
use super::{AppState, blob_body, body, write_failed};
use crate::credentials::Scope;
use crate::raft::Command;
use crate::raft::state::PluginVersion;
use crate::response::{self, ResBody};
use waypost_api::PluginName;
use waypost_api::headers::SEQ as SEQ_HEADER;
use waypost_api::writes::{PluginListing, StoredPlugin};

/// The header that carries the plugin's SHA-256 on GET.
pub use waypost_api::headers::PLUGIN_SHA256 as SHA256_HEADER;
/// The first bytes of every wasm binary, module or component.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Routes `/plugins` and `/plugins/{name}`.
pub async fn dispatch(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(name) = path.strip_prefix("/plugins/") else {
        return match method {
            Method::GET => list(state),
            _ => response::method_not_allowed("GET"),
        };
    };
    if let Err(e) = PluginName::parse(name) {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    match method {
        Method::GET | Method::HEAD => get(state, name, &req).await,
        Method::PUT => put(state, name, req).await,
        Method::DELETE => delete(state, name, &req).await,
        _ => response::method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}

fn list(state: &AppState) -> Response<ResBody> {
    let plugins: PluginListing = state.replica.state.read(|s| {
        s.plugins
            .iter()
            .map(|(name, v)| (name.clone(), v.sha256.clone()))
            .collect()
    });
    body::json_response(StatusCode::OK, &plugins)
}

fn current(state: &AppState, name: &str) -> Option<PluginVersion> {
    state.replica.state.read(|s| s.plugins.get(name).cloned())
}

fn not_found(name: &str) -> Response<ResBody> {
    response::text(
        StatusCode::NOT_FOUND,
        format!("no plugin named {name:?}; deploy one with PUT /plugins/{name}"),
    )
}

async fn get(state: &Arc<AppState>, name: &str, req: &Request<Incoming>) -> Response<ResBody> {
    let Some(version) = current(state, name) else {
        return not_found(name);
    };
    let etag = format!("\"{}\"", version.sha256);
    let mut response = Response::new(response::empty());
    let h = response.headers_mut();
    h.insert(header::ETAG, header_value(&etag));
    h.insert(SHA256_HEADER, header_value(&version.sha256));
    let current_etag: Option<ETag> = etag.parse().ok();
    let matches = req
        .headers()
        .typed_get::<IfNoneMatch>()
        .zip(current_etag)
        .is_some_and(|(inm, etag)| !inm.precondition_passes(&etag));
    if matches {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/wasm"),
    );
    h.insert(header::CONTENT_LENGTH, version.size.into());
    if req.method() == Method::HEAD {
        return response;
    }
    let what = format!("plugin {name}");
    match blob_body::open(state, &what, &version.sha256, version.size, None).await {
        Ok(body) => {
            *response.body_mut() = body;
            response
        }
        Err(response) => response,
    }
}

async fn put(state: &Arc<AppState>, name: &str, req: Request<Incoming>) -> Response<ResBody> {
    if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Write,
        "publishing a plugin",
    ) {
        return denied;
    }
    let blob = match body::store_upload(state, req, "plugin").await {
        Ok(blob) => blob,
        Err(response) => return response,
    };
    match starts_with_wasm_magic(state, &blob.sha256, blob.size).await {
        Ok(true) => {}
        Ok(false) => {
            return response::text(
                StatusCode::BAD_REQUEST,
                "the body is not a WebAssembly module or component (it must start with \\0asm)",
            );
        }
        Err(e) => return response::internal("reading back the stored plugin failed", &e),
    }
    if let Err(response) = body::hold_on_majority(state, &blob).await {
        return response;
    }
    let command = Command::PutPlugin {
        name: name.to_string(),
        sha256: blob.sha256.clone(),
        size: blob.size,
    };
    let outcome = match state.write(command).await {
        Ok(outcome) => outcome,
        Err(e) => return write_failed(&e),
    };
    let status = if outcome.existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let stored = StoredPlugin {
        name: name.to_string(),
        sha256: blob.sha256.clone(),
        size: blob.size,
        seq: outcome.seq,
    };
    let mut response = body::json_response(status, &stored);
    let h = response.headers_mut();
    h.insert(header::ETAG, header_value(&format!("\"{}\"", blob.sha256)));
    if let Some(seq) = outcome.seq {
        h.insert(SEQ_HEADER, seq.into());
    }
    response
}

/// Whether the stored blob begins like a wasm binary; checked after the
/// upload so the body is streamed once and never buffered whole.
async fn starts_with_wasm_magic(
    state: &AppState,
    sha256: &str,
    size: u64,
) -> Result<bool, object_store::Error> {
    if size < WASM_MAGIC.len() as u64 {
        return Ok(false);
    }
    let head = state
        .store
        .blobs
        .get_stream(sha256, Some(0..WASM_MAGIC.len() as u64))
        .await?;
    let head: Vec<Bytes> = head.stream.try_collect().await?;
    Ok(head.concat() == WASM_MAGIC)
}

async fn delete(state: &Arc<AppState>, name: &str, req: &Request<Incoming>) -> Response<ResBody> {
    if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Write,
        "deleting a plugin",
    ) {
        return denied;
    }
    let command = Command::DeletePlugin {
        name: name.to_string(),
    };
    match state.write(command).await {
        Ok(outcome) if outcome.existed => {
            let mut response = Response::new(response::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            if let Some(seq) = outcome.seq {
                response.headers_mut().insert(SEQ_HEADER, seq.into());
            }
            response
        }
        Ok(_) => not_found(name),
        Err(e) => write_failed(&e),
    }
}

/// Values come from our own validated state; fall back rather than fail.
fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
