//! `/internal/...`: what regions ask each other, all behind the cluster
//! token (scope `peer`, [`crate::credentials`]).
//!
//! - `POST /internal/raft/{append,vote,snapshot}`: Raft RPCs in CBOR (or
//!   JSON from an older origin, [`crate::raft::wire`]); the answer is the
//!   JSON of openraft's `Result`, so errors travel typed.
//! - `POST /internal/raft/write`: a write forwarded by a follower; 421 when
//!   this node is not the leader (nothing was applied, the caller retries).
//! - `GET /internal/raft/read-index`: the commit index a linearizable read
//!   on a follower waits for.
//! - `GET /internal/blobs/{sha256}`: a blob from this region's store, for
//!   a region that lacks it; `HEAD` says whether (and at what size) this
//!   region has it.
//! - `PUT /internal/blobs/{sha256}`: a region that took an upload hands
//!   this one a copy before committing it ([`crate::peers::push`]); the
//!   bytes are hashed while they are stored and kept under that address
//!   only if they match it.

use std::sync::Arc;

use futures::TryStreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, StreamBody};
use hyper::body::{Frame, Incoming};
use openraft::Vote;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;

use super::auth;
use super::{AppState, body, write_failed};
use crate::credentials::Scope;
use crate::peer_tls::PeerIdentity;
use crate::peers::push::BLOB_SIZE_HEADER;
use crate::raft::intake::BadRpc;
use crate::raft::network::MAX_RPC_BYTES as MAX_RPC;
use crate::raft::{Command, NodeId, TypeConfig};
use crate::response::{self, ResBody};
use crate::store::BlobWriteError;

/// Routes an `/internal/...` request.
pub async fn dispatch(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    let identity = req.extensions().get::<PeerIdentity>().copied();
    if state.peer_tls.is_some() {
        if identity.is_none() {
            return response::text(
                StatusCode::FORBIDDEN,
                "peer traffic is on mutual TLS: /internal/* takes a peer certificate, never a token",
            );
        }
    } else if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Peer,
        "/internal/*",
    ) {
        return denied;
    }
    let path = req.uri().path().to_string();
    let replica = &state.replica;
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/internal/raft/append") => {
            match body::rpc::<AppendEntriesRequest<TypeConfig>>(req, MAX_RPC).await {
                Ok(rpc) => match speaks_for(identity, &rpc.vote) {
                    Some(refusal) => refusal,
                    None => rpc_answer(replica.receive_append(rpc).await),
                },
                Err(response) => response,
            }
        }
        (Method::POST, "/internal/raft/vote") => {
            match body::rpc::<VoteRequest<NodeId>>(req, MAX_RPC).await {
                Ok(rpc) => match speaks_for(identity, &rpc.vote) {
                    Some(refusal) => refusal,
                    None => rpc_answer(replica.receive_vote(rpc).await),
                },
                Err(response) => response,
            }
        }
        (Method::POST, "/internal/raft/snapshot") => {
            match body::rpc::<InstallSnapshotRequest<TypeConfig>>(req, MAX_RPC).await {
                Ok(rpc) => match speaks_for(identity, &rpc.vote) {
                    Some(refusal) => refusal,
                    None => rpc_answer(replica.receive_snapshot(rpc).await),
                },
                Err(response) => response,
            }
        }
        (Method::POST, "/internal/raft/write") => match body::rpc::<Command>(req, MAX_RPC).await {
            Ok(command) => match blob_size_disagrees(state, &command).await {
                Some(refusal) => refusal,
                None => forwarded_write(state, command).await,
            },
            Err(response) => response,
        },
        (Method::GET, "/internal/raft/read-index") => match state.replica.read_index().await {
            Ok(index) => ok_json(&index),
            Err(e) => write_failed(&e),
        },
        (method, p) if p.starts_with("/internal/blobs/") => {
            let sha256 = p["/internal/blobs/".len()..].to_string();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return response::text(StatusCode::BAD_REQUEST, "a blob address is 64 hex digits");
            }
            match method {
                Method::GET => blob(state, &sha256).await,
                Method::HEAD => blob_size(state, &sha256).await,
                Method::PUT => store_blob(state, &sha256, req).await,
                _ => response::method_not_allowed("GET, HEAD, PUT"),
            }
        }
        _ => response::text(StatusCode::NOT_FOUND, "unknown internal endpoint"),
    }
}

/// 403 when a Raft RPC claims a sender other than the node the peer
/// certificate names: with mutual TLS one region cannot vote or append as
/// another. (Without it, every holder of the cluster token is every node.)
fn speaks_for(identity: Option<PeerIdentity>, vote: &Vote<NodeId>) -> Option<Response<ResBody>> {
    let PeerIdentity(cert) = identity?;
    let claimed = vote.leader_id().voted_for()?;
    (claimed != cert).then(|| {
        response::text(
            StatusCode::FORBIDDEN,
            format!(
                "this Raft RPC claims to come from node {claimed}, but the peer certificate is \
                 node {cert}'s"
            ),
        )
    })
}

/// Proposes a write a follower forwarded; 421 when this node is not the
/// leader (nothing was applied), 400 for an invalid command.
async fn forwarded_write(state: &Arc<AppState>, command: Command) -> Response<ResBody> {
    match state.replica.write_here(command).await {
        Ok(Some(outcome)) => ok_json(&outcome),
        Ok(None) => response::text(
            StatusCode::MISDIRECTED_REQUEST,
            "this origin is not the leader",
        ),
        Err(e) => write_failed(&e),
    }
}

/// 422 when a forwarded write points at a blob this region holds at
/// another size than the command says. The state machine refuses sizes
/// that disagree with other entries; this also catches a wrong size for a
/// blob nothing points at yet. A missing blob proves nothing (the
/// proposer copied it to a majority, which need not include this region).
async fn blob_size_disagrees(state: &AppState, command: &Command) -> Option<Response<ResBody>> {
    let (sha256, size) = match command {
        Command::PutAsset { meta, .. } => (&meta.sha256, meta.size),
        Command::PutPlugin { sha256, size, .. } => (sha256, *size),
        _ => return None,
    };
    crate::raft::validate::check_sha256(sha256).ok()?;
    let stored = state.store.blobs.stored_size(sha256).await.ok()?;
    (stored != size).then(|| {
        response::text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("blob {sha256} is {stored} bytes here, not {size}; nothing was written"),
        )
    })
}

async fn blob(state: &Arc<AppState>, sha256: &str) -> Response<ResBody> {
    match state.store.blobs.get_stream(sha256, None).await {
        Ok(blob) => {
            let body = StreamBody::new(blob.stream.map_ok(Frame::data).map_err(Into::into));
            Response::new(body.boxed_unsync())
        }
        Err(object_store::Error::NotFound { .. }) => {
            response::text(StatusCode::NOT_FOUND, "this region does not have the blob")
        }
        Err(e) => response::internal("reading a blob for a peer failed", &e),
    }
}

async fn blob_size(state: &Arc<AppState>, sha256: &str) -> Response<ResBody> {
    match state.store.blobs.stored_size(sha256).await {
        Ok(size) => {
            let mut response = Response::new(response::empty());
            response.headers_mut().insert(BLOB_SIZE_HEADER, size.into());
            response
        }
        Err(object_store::Error::NotFound { .. }) => {
            response::text(StatusCode::NOT_FOUND, "this region does not have the blob")
        }
        Err(e) => response::internal("looking up a blob for a peer failed", &e),
    }
}

/// Stores a copy a peer pushes. Bytes that hash to another address end up
/// under that one (harmless: content addressing), never under `sha256`.
async fn store_blob(
    state: &Arc<AppState>,
    sha256: &str,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let limit = state.config.max_upload_bytes;
    let body = body::limited(req, limit).into_data_stream();
    match state.store.blobs.put_stream(body, |_| {}).await {
        Ok(stored) if stored.sha256 == sha256 => {
            let mut response = Response::new(response::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Ok(stored) => response::text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the pushed bytes hash to {}, not {sha256}; not stored under {sha256}",
                stored.sha256
            ),
        ),
        Err(BlobWriteError::Body(e)) if e.is::<LengthLimitError>() => body::upload_too_large(limit),
        Err(BlobWriteError::Body(e)) => response::text(
            StatusCode::BAD_REQUEST,
            format!("the pushed blob ended early ({e}); nothing was stored"),
        ),
        Err(e) => response::internal("storing a blob a peer pushed failed", &e),
    }
}

/// openraft's answer as JSON, or 400 for an RPC refused before it.
fn rpc_answer<T: Serialize>(result: Result<T, BadRpc>) -> Response<ResBody> {
    match result {
        Ok(answer) => ok_json(&answer),
        Err(e) => response::text(StatusCode::BAD_REQUEST, format!("Raft RPC refused: {e}")),
    }
}

fn ok_json(value: &impl Serialize) -> Response<ResBody> {
    body::json_response(StatusCode::OK, value)
}
