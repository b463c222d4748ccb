//! `/cluster`: the Raft group as JSON, and adding or removing a region at
//! runtime.
//!
//! - `GET /cluster`: [`crate::raft::ClusterStatus`] from this node.
//! - `POST /cluster/members` `{"id": 4, "addr": "10.0.4.10:7070"}`: adds a
//!   region; it first catches up as a learner, then becomes a voter.
//! - `DELETE /cluster/members/{id}`: removes a region from the voters.
//!
//! Membership changes run on the leader; other nodes answer 307 to it.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use openraft::{BasicNode, ChangeMembers};
use serde::Deserialize;

use super::auth::require_token;
use super::{AppState, body};
use crate::response::{self, ResBody};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    id: u64,
    addr: String,
}

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
    if let Err(denied) = require_token(req.headers(), &state.config.token) {
        return denied;
    }
    if let Some(redirect) = to_leader(state, &path) {
        return redirect;
    }
    match (method, path.strip_prefix("/cluster/members")) {
        (Method::POST, Some("")) => add(state, req).await,
        (Method::DELETE, Some(id)) if id.starts_with('/') => match id[1..].parse::<u64>() {
            Ok(id) => remove(state, id).await,
            Err(_) => response::text(StatusCode::BAD_REQUEST, "the member id must be a number"),
        },
        _ => response::text(
            StatusCode::NOT_FOUND,
            "use POST /cluster/members or DELETE /cluster/members/<id>",
        ),
    }
}

async fn add(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    let member: NewMember = match body::json(req, 64 * 1024).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    if member.id == 0
        || member
            .addr
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    {
        return response::text(
            StatusCode::BAD_REQUEST,
            "give a non-zero `id` and an `addr` like 10.0.4.10:7070",
        );
    }
    let raft = &state.replica.raft;
    // Blocks until the learner has caught up, so the voter change below does
    // not stall writes on a member that is far behind.
    if let Err(e) = raft
        .add_learner(member.id, BasicNode { addr: member.addr }, true)
        .await
    {
        return response::text(StatusCode::CONFLICT, format!("cannot add the region: {e}"));
    }
    let change = ChangeMembers::AddVoterIds(BTreeSet::from([member.id]));
    match raft.change_membership(change, false).await {
        Ok(_) => body::json_response(StatusCode::OK, &state.replica.status()),
        Err(e) => response::text(
            StatusCode::CONFLICT,
            format!("cannot make the region a voter: {e}"),
        ),
    }
}

async fn remove(state: &Arc<AppState>, id: u64) -> Response<ResBody> {
    let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
    match state.replica.raft.change_membership(change, false).await {
        Ok(_) => body::json_response(StatusCode::OK, &state.replica.status()),
        Err(e) => response::text(
            StatusCode::CONFLICT,
            format!("cannot remove region {id}: {e}"),
        ),
    }
}

/// A 307 to the leader when this node is not it.
fn to_leader(state: &AppState, path: &str) -> Option<Response<ResBody>> {
    let status = state.replica.status();
    if status.leader == Some(status.node_id) {
        return None;
    }
    let Some(addr) = status.leader_addr else {
        return Some(response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader is known yet; retry in a second",
        ));
    };
    let mut response = response::text(
        StatusCode::TEMPORARY_REDIRECT,
        format!("membership changes run on the leader at {addr}"),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("http://{addr}{path}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Some(response)
}
