//! `/kv/{namespace}/{key}`: the replicated key-value store edge plugins use.
//!
//! Values are UTF-8 text up to [`MAX_VALUE`] bytes. Writes go through Raft
//! (forwarded to the leader); reads are local unless the query says
//! `consistency=strong`. `GET /kv/{namespace}?prefix=P` lists keys in order.
//!
//! A value's `ETag` is the SHA-256 of its bytes. `PUT` and `DELETE` take
//! `If-Match: "<etag>"` (compare-and-set) and `If-None-Match: *` (create
//! only); the state machine decides them on the value current at commit,
//! so of concurrent writers with the same precondition exactly one wins
//! and the others get 412. (Being a content hash, the tag survives a write
//! of the same bytes: a compare-and-set on it then still succeeds, as one
//! on the value should.)

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::auth;
use super::{AppState, body, query, write_failed};
use crate::credentials::Scope;
use crate::json_size::json_len;
use crate::raft::Command;
use crate::raft::conditions::{self, Conditions};
use crate::response::{self, ResBody};

use waypost_api::headers::SEQ as SEQ_HEADER;
use waypost_api::kv::{Entry, Listing, MAX_LIST};
use waypost_api::{KvKey, Namespace};

pub use waypost_api::names::MAX_KV_VALUE as MAX_VALUE;
/// Most bytes of JSON one listing holds (at least one entry): 1,000 values
/// of 1 MiB would be ~1 GiB, ~6 GiB escaped.
pub const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;
/// `{"key":,"value":},` around each entry.
const ENTRY_OVERHEAD: usize = 18;

/// Routes a `/kv/...` request.
pub async fn dispatch(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    let rest = &req.uri().path()["/kv/".len()..];
    let (ns, key) = match rest.split_once('/') {
        Some((ns, key)) => (decode(ns), Some(decode(key))),
        None => (decode(rest), None),
    };
    if let Err(e) = Namespace::parse(&ns) {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let method = req.method().clone();
    let Some(key) = key else {
        return match method {
            Method::GET => list(state, &ns, &req).await,
            _ => response::method_not_allowed("GET"),
        };
    };
    if let Err(e) = KvKey::parse(&key) {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    match method {
        Method::GET | Method::HEAD => get(state, &ns, &key, &req).await,
        Method::PUT => put(state, ns, key, req).await,
        Method::DELETE => delete(state, ns, key, &req).await,
        _ => response::method_not_allowed("GET, HEAD, PUT, DELETE"),
    }
}

async fn get(
    state: &Arc<AppState>,
    ns: &str,
    key: &str,
    req: &Request<Incoming>,
) -> Response<ResBody> {
    if query::strong(req.uri())
        && let Err(e) = state.replica.sync_for_read().await
    {
        return write_failed(&e);
    }
    let value = state
        .replica
        .state
        .read(|s| s.kv.get(ns).and_then(|n| n.get(key)).cloned());
    let Some(value) = value else {
        return response::text(
            StatusCode::NOT_FOUND,
            format!("no key {key:?} in namespace {ns:?}"),
        );
    };
    let mut response = Response::new(if req.method() == Method::HEAD {
        response::empty()
    } else {
        response::full(value.clone())
    });
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, value.len().into());
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", conditions::kv_etag(&value))) {
        h.insert(header::ETAG, etag);
    }
    response
}

async fn put(
    state: &Arc<AppState>,
    namespace: String,
    key: String,
    req: Request<Incoming>,
) -> Response<ResBody> {
    if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Write,
        "writing a KV key",
    ) {
        return denied;
    }
    let precondition = Conditions::from_headers(req.headers(), false);
    let bytes = match body::read(req, MAX_VALUE).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let Ok(value) = String::from_utf8(bytes.to_vec()) else {
        return response::text(StatusCode::BAD_REQUEST, "KV values must be UTF-8 text");
    };
    match state
        .write(Command::KvPut {
            namespace,
            key,
            value,
            precondition,
        })
        .await
    {
        Ok(outcome) => {
            let status = if outcome.existed {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::CREATED
            };
            with_seq(status, outcome.seq)
        }
        Err(e) => write_failed(&e),
    }
}

async fn delete(
    state: &Arc<AppState>,
    namespace: String,
    key: String,
    req: &Request<Incoming>,
) -> Response<ResBody> {
    if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Write,
        "deleting a KV key",
    ) {
        return denied;
    }
    let command = Command::KvDelete {
        namespace,
        key,
        precondition: Conditions::from_headers(req.headers(), false),
    };
    match state.write(command).await {
        Ok(outcome) if outcome.existed => with_seq(StatusCode::NO_CONTENT, outcome.seq),
        Ok(_) => response::text(StatusCode::NOT_FOUND, "no such key"),
        Err(e) => write_failed(&e),
    }
}

async fn list(state: &Arc<AppState>, ns: &str, req: &Request<Incoming>) -> Response<ResBody> {
    if query::strong(req.uri())
        && let Err(e) = state.replica.sync_for_read().await
    {
        return write_failed(&e);
    }
    let prefix = query::param(req.uri(), "prefix").unwrap_or_default();
    let after = query::param(req.uri(), "after");
    let (entries, truncated) = state.replica.state.read(|s| {
        let Some(n) = s.kv.get(ns) else {
            return (Vec::new(), false);
        };
        // Start inside the prefix even when `after` sorts before it.
        let start = after
            .clone()
            .filter(|a| *a > prefix)
            .unwrap_or_else(|| prefix.clone());
        let mut matching = n
            .range(start..)
            .filter(|(k, _)| after.as_ref() != Some(*k))
            .take_while(|(k, _)| k.starts_with(&prefix));
        let mut entries = Vec::new();
        let mut bytes = 0;
        let truncated = loop {
            let Some((k, v)) = matching.next() else {
                break false;
            };
            let size = json_len(k) + json_len(v) + ENTRY_OVERHEAD;
            let full = entries.len() == MAX_LIST || bytes + size > MAX_LIST_BYTES;
            if full && !entries.is_empty() {
                break true;
            }
            bytes += size;
            entries.push(Entry {
                key: k.clone(),
                value: v.clone(),
            });
        };
        (entries, truncated)
    });
    body::json_response(
        StatusCode::OK,
        &Listing {
            namespace: ns.to_string(),
            entries,
            truncated,
        },
    )
}

fn with_seq(status: StatusCode, seq: Option<u64>) -> Response<ResBody> {
    let mut response = Response::new(response::empty());
    *response.status_mut() = status;
    if let Some(seq) = seq {
        response.headers_mut().insert(SEQ_HEADER, seq.into());
    }
    response
}

fn decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}
