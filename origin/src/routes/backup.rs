//! `/backup/...`: what `waypost backup` reads. `GET /backup/state` is the
//! replicated state at one Raft index (after a read-index round, so every
//! write acknowledged before the request is in it); `GET
//! /backup/blobs/<sha256>?size=N` is a blob it references, hash-checked
//! and fetched from another region if this one lacks it. Both need an
//! `admin` token: a backup holds every KV value.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use waypost_api::backup::{AssetRecord, BlobRef, FORMAT, QueueRecord, StateDump};

use super::auth;
use super::{AppState, blob_body, body, query, write_failed};
use crate::credentials::Scope;
use crate::raft::validate::check_sha256;
use crate::response::{self, ResBody};

pub async fn dispatch(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Admin,
        "reading a backup",
    ) {
        return denied;
    }
    if req.method() != Method::GET {
        return response::method_not_allowed("GET");
    }
    let path = req.uri().path();
    if path == "/backup/state" {
        return dump(state).await;
    }
    let Some(sha256) = path.strip_prefix("/backup/blobs/") else {
        return response::text(
            StatusCode::NOT_FOUND,
            "the backup API is GET /backup/state and GET /backup/blobs/<sha256>?size=N",
        );
    };
    if let Err(e) = check_sha256(sha256) {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let Some(size) = query::param(req.uri(), "size").and_then(|s| s.parse::<u64>().ok()) else {
        return response::text(
            StatusCode::BAD_REQUEST,
            "give the blob's size from the state dump: ?size=<bytes>",
        );
    };
    match blob_body::open(state, "a blob for a backup", sha256, size, None).await {
        Ok(body) => Response::new(body),
        Err(response) => response,
    }
}

async fn dump(state: &Arc<AppState>) -> Response<ResBody> {
    if let Err(e) = state.replica.sync_for_read().await {
        return write_failed(&e);
    }
    let taken_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let raft_index = state.replica.state.applied_index();
    let dump = state.replica.state.read(|s| StateDump {
        format: FORMAT,
        raft_index,
        taken_at_ms,
        assets: s
            .assets
            .iter()
            .map(|(path, m)| {
                let record = AssetRecord {
                    sha256: m.sha256.clone(),
                    size: m.size,
                    content_type: m.content_type.clone(),
                    cache_control: m.cache_control.clone(),
                    surrogate_keys: m.surrogate_keys.clone(),
                    last_modified: m.last_modified,
                };
                (path.clone(), record)
            })
            .collect(),
        kv: s.kv.clone(),
        plugins: s
            .plugins
            .iter()
            .map(|(name, v)| {
                let blob = BlobRef {
                    sha256: v.sha256.clone(),
                    size: v.size,
                };
                (name.clone(), blob)
            })
            .collect(),
        queues: s
            .queues
            .iter()
            .map(|(name, q)| {
                let c = q.contents();
                QueueRecord {
                    name: name.clone(),
                    spec: c.spec,
                    messages: c.messages,
                    dead_letters: c.dead_letters,
                    large_messages: c.large_messages,
                    large_dead_letters: c.large_dead_letters,
                }
            })
            .collect(),
    });
    body::json_response(StatusCode::OK, &dump)
}
