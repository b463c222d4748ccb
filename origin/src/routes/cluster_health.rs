//! `GET /cluster/health` (read scope): each member's own `/healthz` and
//! applied index, asked by this region over the links between regions,
//! with the leader's view of how far each one lags. An operator's tools
//! cannot ask the members themselves once those links are mutual TLS (the
//! members' addresses take only the cluster's certificates), and the
//! answer is what the cluster itself can reach, which is what counts.
//!
//! One round of probes serves every caller for [`FRESH_FOR`]: callers
//! that arrive while a round runs wait for it, so a dashboard refreshing
//! in many browsers (or a script in a loop) costs the members two
//! requests a second, not two per call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use waypost_api::cluster::{ClusterStatus, Health, MemberHealth};

use super::{AppState, body};
use crate::peers::http::{ANSWER_MAX, json_answer};
use crate::raft::NodeId;
use crate::response::ResBody;

/// How long a member gets to answer; one that takes longer is reported
/// as not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one round of probes answers later callers.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The last round of probes and when it ended.
#[derive(Debug, Default)]
pub struct LastRound(tokio::sync::Mutex<Option<(Instant, Vec<MemberHealth>)>>);

pub async fn members(state: &Arc<AppState>) -> Response<ResBody> {
    let mut last = state.health_round.0.lock().await;
    let members = match &*last {
        Some((at, members)) if at.elapsed() < FRESH_FOR => members.clone(),
        _ => {
            let members = probe_round(state).await;
            *last = Some((Instant::now(), members.clone()));
            members
        }
    };
    drop(last);
    body::json_response(StatusCode::OK, &members)
}

async fn probe_round(state: &AppState) -> Vec<MemberHealth> {
    let status = state.replica.status();
    // Replication lag is known to the leader only.
    let leader_view = match (&status.leader_addr, status.is_leader()) {
        (_, true) => Some(status.clone()),
        (Some(leader), false) => get::<ClusterStatus>(state, leader, "/cluster").await,
        (None, false) => None,
    };
    let lags: BTreeMap<NodeId, Option<u64>> = leader_view
        .map(|v| {
            v.members
                .iter()
                .map(|m| (m.id, m.replication_lag))
                .collect()
        })
        .unwrap_or_default();
    let probes = status.members.iter().map(|m| async {
        let (health, cluster) = futures::join!(
            get::<Health>(state, &m.addr, "/healthz"),
            get::<ClusterStatus>(state, &m.addr, "/cluster"),
        );
        MemberHealth {
            id: m.id,
            addr: m.addr.clone(),
            voter: m.voter,
            health,
            applied_index: cluster.map(|c| c.applied_index),
            replication_lag: lags.get(&m.id).copied().flatten(),
        }
    });
    futures::future::join_all(probes).await
}

/// `path` of the member at `addr` as JSON, whatever its status (`/healthz`
/// answers 503 with its verdict); `None` if it did not answer in time.
async fn get<T: serde::de::DeserializeOwned>(
    state: &AppState,
    addr: &str,
    path: &str,
) -> Option<T> {
    let resp = state
        .replica
        .http()
        .get(addr, path)
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .ok()?;
    json_answer(resp, ANSWER_MAX).await.ok()
}
