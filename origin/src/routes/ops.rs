//! Operational endpoints: health, Prometheus metrics and purge.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use waypost_api::cluster::{Health, HealthState};
use waypost_api::writes::{Accepted, PurgeRequest};

use super::auth;
use super::{AppState, body, write_failed};
use crate::credentials::Scope;
use crate::metrics::{PeerLabels, QueueLabels, QueueStateLabels};
use crate::raft::Command;
use crate::response::{self, ResBody};

/// How long `/healthz` waits for the leader's commit index.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// `/healthz`: ready (200) when the Raft node runs, a leader is reachable
/// and this node has applied everything the leader had committed. A region
/// that is catching up after a restart answers 503, so edges keep reading
/// from another region until it serves current data.
pub async fn healthz(state: &Arc<AppState>, method: &Method) -> Response<ResBody> {
    let status = state.replica.status();
    let (health, lag) = if status.role == "shutdown" {
        (HealthState::Stopped, None)
    } else {
        match tokio::time::timeout(HEALTH_TIMEOUT, state.replica.read_index()).await {
            Ok(Ok(commit)) => {
                let lag = commit.saturating_sub(state.replica.state.applied_index());
                (
                    if lag == 0 {
                        HealthState::Ok
                    } else {
                        HealthState::CatchingUp
                    },
                    Some(lag),
                )
            }
            Ok(Err(_)) | Err(_) => (HealthState::NoLeader, None),
        }
    };
    let body = Health {
        status: health,
        node_id: status.node_id,
        role: status.role,
        leader: status.leader,
        lag,
    };
    let code = if health == HealthState::Ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = body::json_response(code, &body);
    strip_body_for_head(method, &mut response);
    response
}

/// `/metrics`: Prometheus text of this server's registry, with the
/// replication gauges refreshed from the Raft node first.
pub fn metrics(state: &Arc<AppState>, method: &Method) -> Response<ResBody> {
    let m = &state.metrics;
    m.assets
        .set(state.replica.state.read(|s| s.assets.len()) as i64);
    let status = state.replica.status();
    m.leader_changes.set(status.leader_changes as i64);
    if let Some(tls) = &state.peer_tls {
        m.peer_cert_expiry.set(tls.seconds_left());
    }
    if let Some(tls) = &state.public_tls {
        m.public_cert_expiry.set(tls.seconds_left());
    }
    for peer in &status.members {
        if let Some(lag) = peer.replication_lag {
            m.replication_lag
                .get_or_create(&PeerLabels { peer: peer.id })
                .set(lag as i64);
        }
    }
    set_queue_gauges(state);
    set_feed_gauges(state);
    let mut response = Response::new(response::full(state.metrics.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(service_base::metrics_text::CONTENT_TYPE),
    );
    strip_body_for_head(method, &mut response);
    response
}

/// This region's view of every queue; queues deleted since the last
/// scrape disappear from the output.
fn set_queue_gauges(state: &AppState) {
    let m = &state.metrics;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let stats: Vec<_> = state.replica.state.read(|s| {
        s.queues
            .iter()
            .map(|(name, q)| q.stats(name, now))
            .collect()
    });
    m.queue_messages.clear();
    m.queue_oldest_age.clear();
    for q in stats {
        let queue = q.name.to_string();
        for (state, count) in [
            ("ready", q.ready),
            ("in_flight", q.in_flight),
            ("delayed", q.delayed),
            ("dead", q.dead_letters),
        ] {
            m.queue_messages
                .get_or_create(&QueueStateLabels {
                    queue: queue.clone(),
                    state,
                })
                .set(count as i64);
        }
        m.queue_oldest_age
            .get_or_create(&QueueLabels { queue })
            .set(q.oldest_age_s as i64);
    }
}

fn set_feed_gauges(state: &AppState) {
    for class in waypost_api::feed::EventClass::ALL {
        let (events, bytes) = state.replica.state.read(|s| s.feed.usage(class));
        let labels = crate::metrics::FeedClassLabels {
            class: class.as_str(),
        };
        let m = &state.metrics;
        m.feed_events_kept.get_or_create(&labels).set(events as i64);
        m.feed_bytes_kept.get_or_create(&labels).set(bytes as i64);
    }
}

/// `POST /purge`: records a purge in the change feed, which edges follow.
pub async fn purge(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    if let Err(denied) = auth::require(req.headers(), &state.credentials, Scope::Write, "purging") {
        return denied;
    }
    let purge: PurgeRequest = match body::json(req, 1024 * 1024).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    if purge.paths.is_empty() && purge.surrogate_keys.is_empty() {
        return response::text(
            StatusCode::BAD_REQUEST,
            "give `paths` and/or `surrogate_keys` to purge",
        );
    }
    let command = Command::Purge {
        paths: purge.paths,
        surrogate_keys: purge.surrogate_keys,
        soft: purge.soft,
    };
    match state.write(command).await {
        Ok(outcome) => body::json_response(StatusCode::ACCEPTED, &Accepted { seq: outcome.seq }),
        Err(e) => write_failed(&e),
    }
}

fn strip_body_for_head(method: &Method, response: &mut Response<ResBody>) {
    if method == Method::HEAD {
        *response.body_mut() = response::empty();
    }
}
