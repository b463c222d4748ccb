//! `/cluster`: the Raft group as JSON, and adding or removing a region at
//! runtime (changes need an `admin` token).
//!
//! - `GET /cluster`: [`crate::raft::ClusterStatus`] from this node,
//!   including `voters` and `learners`.
//! - `GET /cluster/health`: every member's health as this node reaches it
//!   ([`super::cluster_health`]).
//! - `POST /cluster/members` `{"id": 4, "addr": "10.0.4.10:7070"}`: adds a
//!   region; it catches up as a learner, then becomes a voter. The answer
//!   (200) comes once it votes. The new region must already run: see
//!   [`crate::raft::bootstrap`] for how it starts and waits to be added.
//! - `DELETE /cluster/members/{id}`: removes a region.
//!
//! Membership changes run on the leader; any other region forwards the
//! request there, as it does writes. Refusals are 4xx with the reason
//! ([`MembershipError`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use waypost_api::cluster::NewMember;
/// Marks a request one region forwarded to the leader, so a leader change
/// in between cannot bounce it around.
use waypost_api::headers::FORWARDED;

use super::auth;
use super::{AppState, body};
use crate::credentials::Scope;
use crate::peers::http::{ANSWER_MAX, read_answer};
use crate::raft::membership::{CATCH_UP_TIMEOUT, MembershipError};
use crate::response::{self, ResBody};

/// Routes a `/cluster...` request.
pub async fn dispatch(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/cluster" {
        return match method {
            Method::GET => body::json_response(StatusCode::OK, &state.replica.status()),
            _ => response::method_not_allowed("GET"),
        };
    }
    if path == "/cluster/health" {
        return match method {
            Method::GET => super::cluster_health::members(state).await,
            _ => response::method_not_allowed("GET"),
        };
    }
    if let Err(denied) = auth::require(
        req.headers(),
        &state.credentials,
        Scope::Admin,
        "changing membership",
    ) {
        return denied;
    }
    // The leader checks the operator's own token again: forwarding adds
    // no authority of this region's.
    let authorization = req.headers().get(header::AUTHORIZATION).cloned();
    let forwarded = req.headers().contains_key(FORWARDED);
    let result = match (&method, path.strip_prefix("/cluster/members")) {
        (&Method::POST, Some("")) => {
            let bytes = match body::read(req, 64 * 1024).await {
                Ok(b) => b,
                Err(response) => return response,
            };
            let member: NewMember = match serde_json::from_slice(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    return response::text(
                        StatusCode::BAD_REQUEST,
                        format!("give {{\"id\": <number>, \"addr\": \"host:port\"}}: {e}"),
                    );
                }
            };
            match state.replica.add_member(member.id, member.addr).await {
                Err(MembershipError::NotLeader) if !forwarded => {
                    return forward(state, &method, &path, authorization, bytes).await;
                }
                other => other,
            }
        }
        (&Method::DELETE, Some(id)) if id.starts_with('/') => {
            let Ok(id) = id[1..].parse::<u64>() else {
                return response::text(StatusCode::BAD_REQUEST, "the member id must be a number");
            };
            match state.replica.remove_member(id).await {
                Err(MembershipError::NotLeader) if !forwarded => {
                    return forward(state, &method, &path, authorization, Bytes::new()).await;
                }
                other => other,
            }
        }
        _ => {
            return response::text(
                StatusCode::NOT_FOUND,
                "use POST /cluster/members or DELETE /cluster/members/<id>",
            );
        }
    };
    match result {
        Ok(()) => body::json_response(StatusCode::OK, &state.replica.status()),
        Err(e) => response::text(status_of(&e), e.to_string()),
    }
}

fn status_of(e: &MembershipError) -> StatusCode {
    use MembershipError as E;
    match e {
        E::BadAddr(_) | E::ZeroId => StatusCode::BAD_REQUEST,
        E::UnknownId { .. } => StatusCode::NOT_FOUND,
        E::DuplicateId { .. }
        | E::DuplicateAddr { .. }
        | E::LastVoter(_)
        | E::NoMajorityLeft { .. } => StatusCode::CONFLICT,
        E::Unreachable { .. } | E::WrongId { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        E::NotCaughtUp { .. } => StatusCode::GATEWAY_TIMEOUT,
        E::NotLeader | E::Raft(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Sends the request to the leader and relays its answer.
async fn forward(
    state: &AppState,
    method: &Method,
    path: &str,
    authorization: Option<HeaderValue>,
    body: Bytes,
) -> Response<ResBody> {
    let Some(leader) = state.replica.leader_addr() else {
        return response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader is known yet; retry in a second",
        );
    };
    let mut request = state.replica.http().request(method.clone(), &leader, path);
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let sent = request
        .header(FORWARDED, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .timeout(CATCH_UP_TIMEOUT + Duration::from_secs(10))
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            return response::text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "forwarding to the leader at {leader} failed ({e}); check GET /cluster before retrying"
                ),
            );
        }
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = match read_answer(answer, ANSWER_MAX).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return response::text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the leader at {leader} answered {status}, but {e}; check GET /cluster before retrying"
                ),
            );
        }
    };
    let mut response = Response::new(response::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("text/plain; charset=utf-8")),
    );
    response
}
