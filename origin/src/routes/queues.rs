//! `/queues/...`: durable queues ([`crate::raft::queues`]).
//!
//! Every change (declare, send, lease, ack, nack, replay) is a Raft write,
//! answered once a majority of regions holds it; reads (listing, stats,
//! peeks at messages and dead letters) are this region's copy. A lease
//! with `wait_s` long-polls: it waits here, without proposing anything,
//! until this region's state shows a message due (or the wait ends), then
//! proposes the lease.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use waypost_api::QueueName;
use waypost_api::queues::{
    AckRequest, LeaseRequest, Leased, MessagePage, Moved, NackRequest, QueueListing, QueueSpec,
    ReplayRequest, SendRequest, SendResponse,
};

use super::auth;
use super::{AppState, body, query, queue_blobs, write_failed};
use crate::credentials::Scope;
use crate::raft::Command;
use crate::raft::queues::{QueueAction, QueueCommand, QueueReply};
use crate::response::{self, ResBody};

/// Largest request body: a batch of messages as JSON (room for one body
/// of `MAX_BODY` with some escaping).
pub const MAX_REQUEST: usize = 2 * waypost_api::queues::MAX_BODY;
/// Most messages (or dead letters) one peek returns.
const PAGE: usize = 100;
/// Most bytes of bodies one peek returns (at least one message).
const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Routes a `/queues` or `/queues/...` request.
pub async fn dispatch(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/queues").unwrap_or_default();
    let method = req.method().clone();
    if rest.is_empty() || rest == "/" {
        return match method {
            Method::GET => list(state),
            _ => response::method_not_allowed("GET"),
        };
    }
    let rest = &rest[1..];
    let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let name = match QueueName::parse(name) {
        Ok(name) => name,
        Err(e) => return response::text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if method != Method::GET
        && method != Method::HEAD
        && let Err(denied) = auth::require(
            req.headers(),
            &state.credentials,
            Scope::Write,
            "changing a queue (declare, send, lease, ack)",
        )
    {
        return denied;
    }
    match (sub, &method) {
        ("", &Method::GET) => stats(state, &name),
        ("", &Method::PUT) => declare(state, name, req).await,
        ("", &Method::DELETE) => change(state, name, QueueAction::Delete).await,
        ("", _) => response::method_not_allowed("GET, PUT, DELETE"),
        ("messages", &Method::POST) => send(state, name, req).await,
        ("messages", &Method::GET) => peek(state, &name, &req, false).await,
        ("messages", _) => response::method_not_allowed("GET, POST"),
        ("lease", &Method::POST) => lease(state, name, req).await,
        ("ack", &Method::POST) => ack(state, name, req).await,
        ("nack", &Method::POST) => nack(state, name, req).await,
        ("pause" | "resume", &Method::POST) => {
            let paused = sub == "pause";
            change(state, name, QueueAction::Pause { paused }).await
        }
        ("dlq", &Method::GET) => peek(state, &name, &req, true).await,
        ("dlq", &Method::DELETE) => change(state, name, QueueAction::PurgeDead).await,
        ("dlq", _) => response::method_not_allowed("GET, DELETE"),
        ("dlq/replay", &Method::POST) => replay(state, name, req).await,
        ("lease" | "ack" | "nack" | "pause" | "resume" | "dlq/replay", _) => {
            response::method_not_allowed("POST")
        }
        _ => response::text(
            StatusCode::NOT_FOUND,
            format!(
                "no queue route {path}; under /queues/<name> are messages, lease, ack, nack, \
                 pause, resume, dlq and dlq/replay"
            ),
        ),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Proposes `action` on queue `name`; the reply, or the response to send.
#[allow(clippy::result_large_err)]
async fn propose(
    state: &AppState,
    queue: QueueName,
    action: QueueAction,
) -> Result<QueueReply, Response<ResBody>> {
    let command = Command::Queue(QueueCommand {
        queue,
        now_ms: now_ms(),
        action,
    });
    match state.write(command).await {
        Ok(outcome) => Ok(outcome.queue.unwrap_or(QueueReply::Done { existed: false })),
        Err(e) => Err(write_failed(&e)),
    }
}

async fn change(state: &AppState, name: QueueName, action: QueueAction) -> Response<ResBody> {
    match propose(state, name, action).await {
        Ok(QueueReply::Moved { count }) => body::json_response(StatusCode::OK, &Moved { count }),
        Ok(QueueReply::Done { existed: false }) => {
            response::text(StatusCode::NOT_FOUND, "no such queue; nothing changed")
        }
        Ok(_) => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(response::empty())
            .expect("static response"),
        Err(response) => response,
    }
}

fn list(state: &AppState) -> Response<ResBody> {
    let now = now_ms();
    let queues = state.replica.state.read(|s| {
        s.queues
            .iter()
            .map(|(name, q)| q.stats(name, now))
            .collect()
    });
    body::json_response(StatusCode::OK, &QueueListing { queues })
}

fn stats(state: &AppState, name: &QueueName) -> Response<ResBody> {
    let now = now_ms();
    match state
        .replica
        .state
        .read(|s| s.queues.get(name).map(|q| q.stats(name, now)))
    {
        Some(stats) => body::json_response(StatusCode::OK, &stats),
        None => not_found(name),
    }
}

fn not_found(name: &QueueName) -> Response<ResBody> {
    response::text(
        StatusCode::NOT_FOUND,
        format!("no queue `{name}`; declare it with PUT /queues/{name}"),
    )
}

async fn declare(state: &AppState, name: QueueName, req: Request<Incoming>) -> Response<ResBody> {
    let bytes = match body::read(req, MAX_REQUEST).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let spec = if bytes.iter().all(u8::is_ascii_whitespace) {
        QueueSpec::default()
    } else {
        match body::parse_json::<QueueSpec>(&bytes) {
            Ok(spec) => spec,
            Err(response) => return response,
        }
    };
    if let Err(e) = spec.check() {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    match propose(state, name.clone(), QueueAction::Declare { spec }).await {
        Ok(QueueReply::Done { existed }) => {
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let stats = state
                .replica
                .state
                .read(|s| s.queues.get(&name).map(|q| q.stats(&name, now_ms())));
            body::json_response(status, &stats)
        }
        Ok(other) => unexpected(&other),
        Err(response) => response,
    }
}

fn unexpected(reply: &QueueReply) -> Response<ResBody> {
    tracing::error!(
        ?reply,
        "a queue command answered with the wrong kind of reply"
    );
    response::text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the queue command answered unexpectedly; the origin logged it",
    )
}

async fn send(state: &AppState, name: QueueName, req: Request<Incoming>) -> Response<ResBody> {
    let request: SendRequest = match body::json(req, MAX_REQUEST).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if let Err(e) = request.check() {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let mut messages = request.messages;
    if let Err(response) = queue_blobs::offload(state, &mut messages).await {
        return response;
    }
    let action = QueueAction::Send { messages };
    match propose(state, name, action).await {
        Ok(QueueReply::Sent { messages }) => {
            body::json_response(StatusCode::OK, &SendResponse { messages })
        }
        Ok(other) => unexpected(&other),
        Err(response) => response,
    }
}

async fn lease(
    state: &Arc<AppState>,
    name: QueueName,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let bytes = match body::read(req, MAX_REQUEST).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let request = if bytes.iter().all(u8::is_ascii_whitespace) {
        LeaseRequest::default()
    } else {
        match body::parse_json::<LeaseRequest>(&bytes) {
            Ok(r) => r,
            Err(response) => return response,
        }
    };
    if let Err(e) = request.check() {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(request.wait_s);
    let mut changes = state.replica.state.subscribe_queues();
    loop {
        let due = state
            .replica
            .state
            .read(|s| s.queues.get(&name).map(|q| q.ready_at()));
        let Some(due) = due else {
            return not_found(&name);
        };
        let now = now_ms();
        if due.is_some_and(|at| at <= now) {
            let action = QueueAction::Lease {
                max: request.max,
                visibility_ms: request.visibility_timeout_s.map(|s| s * 1000),
                request_id: request.request_id.clone(),
            };
            match propose(state, name.clone(), action).await {
                Ok(QueueReply::Leased { messages }) if !messages.is_empty() => {
                    // A body no region can read back is left out (logged):
                    // its lease ends and it is delivered again, alone a
                    // poison message, instead of failing its whole batch.
                    let mut readable = Vec::with_capacity(messages.len());
                    let mut failed = None;
                    for mut m in messages {
                        match queue_blobs::resolve(state, &mut m.body, &mut m.blob).await {
                            Ok(()) => readable.push(m),
                            Err(response) => failed = Some(response),
                        }
                    }
                    if let (true, Some(response)) = (readable.is_empty(), failed) {
                        return response;
                    }
                    return body::json_response(StatusCode::OK, &Leased { messages: readable });
                }
                Ok(QueueReply::Leased { .. }) => {}
                Ok(other) => return unexpected(&other),
                Err(response) => return response,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return body::json_response(StatusCode::OK, &Leased::default());
        }
        // Wake for any queue change here, for the next due message, or at
        // the deadline, whichever comes first.
        let until_due = due
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms()).max(1)))
            .unwrap_or(left);
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(left.min(until_due)) => {}
            () = state.stopping.cancelled() => {
                return body::json_response(StatusCode::OK, &Leased::default());
            }
        }
    }
}

async fn settle(state: &AppState, name: QueueName, action: QueueAction) -> Response<ResBody> {
    match propose(state, name, action).await {
        Ok(QueueReply::Settled { settled }) => body::json_response(StatusCode::OK, &settled),
        Ok(other) => unexpected(&other),
        Err(response) => response,
    }
}

async fn ack(state: &AppState, name: QueueName, req: Request<Incoming>) -> Response<ResBody> {
    let request: AckRequest = match body::json(req, MAX_REQUEST).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if let Err(e) = request.check() {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let receipts = request.receipts;
    settle(state, name, QueueAction::Ack { receipts }).await
}

async fn nack(state: &AppState, name: QueueName, req: Request<Incoming>) -> Response<ResBody> {
    let request: NackRequest = match body::json(req, MAX_REQUEST).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if let Err(e) = request.check() {
        return response::text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let retries = request.retries;
    settle(state, name, QueueAction::Nack { retries }).await
}

async fn replay(state: &AppState, name: QueueName, req: Request<Incoming>) -> Response<ResBody> {
    let bytes = match body::read(req, MAX_REQUEST).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let request = if bytes.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        match body::parse_json::<ReplayRequest>(&bytes) {
            Ok(r) => r,
            Err(response) => return response,
        }
    };
    change(state, name, QueueAction::Replay { ids: request.ids }).await
}

async fn peek(
    state: &Arc<AppState>,
    name: &QueueName,
    req: &Request<Incoming>,
    dead: bool,
) -> Response<ResBody> {
    let after = match query::param(req.uri(), "after").map(|a| a.parse::<u64>()) {
        None => 0,
        Some(Ok(after)) => after,
        Some(Err(_)) => {
            return response::text(
                StatusCode::BAD_REQUEST,
                "`after` is the id of the last message of the previous page, a number",
            );
        }
    };
    let page = state.replica.state.read(|s| {
        s.queues
            .get(name)
            .map(|q| q.page(dead, after, PAGE, PAGE_BYTES))
    });
    let Some((mut messages, truncated)) = page else {
        return not_found(name);
    };
    for m in &mut messages {
        if let Err(response) = queue_blobs::resolve(state, &mut m.body, &mut m.blob).await {
            return response;
        }
    }
    body::json_response(
        StatusCode::OK,
        &MessagePage {
            messages,
            truncated,
        },
    )
}
