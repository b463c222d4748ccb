//! Request routing: which handler answers a path, and the shared state the
//! handlers use. Routing looks at the raw (percent-encoded) path so asset
//! names are decoded exactly once, in [`waypost_api::asset_path`].

mod assets;
mod auth;
mod backup;
mod blob_body;
mod body;
mod cluster;
mod cluster_health;
mod events;
mod internal;
mod kv;
mod ops;
mod plugins;
mod query;
mod queue_blobs;
mod queues;
mod sse;

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::Config;
use crate::credentials::{Credentials, Scope};
use crate::metrics::Metrics;
use crate::peer_tls::PeerIdentity;
use crate::peers::PeerClient;
use crate::raft::{Refusal, Replica, WriteError};
use crate::response::{self, ResBody};
use crate::store::Store;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    /// The tokens accepted, by scope (reloaded from `tokens_file`).
    pub credentials: Arc<Credentials>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub replica: Replica,
    pub peers: PeerClient,
    /// Cancelled when a graceful shutdown starts, so endless responses
    /// (SSE streams) end instead of holding up the drain.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Whether peer traffic has a listener of its own (`[peer]`).
    pub peer_listener: bool,
    /// Mutual TLS between regions (`[peer] ca_file...`): then only peer
    /// certificates reach `/internal/*`, and no token does.
    pub peer_tls: Option<Arc<crate::peer_tls::PeerTls>>,
    /// The public listener's certificate, for its expiry gauge.
    pub public_tls: Option<Arc<crate::public_tls::PublicTls>>,
    /// `GET /cluster/health`'s last round of probes.
    pub health_round: cluster_health::LastRound,
}

/// The listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Public,
    Peer,
}

impl AppState {
    /// Replicates `command` and records the commit latency.
    pub async fn write(
        &self,
        command: crate::raft::Command,
    ) -> Result<crate::raft::Outcome, WriteError> {
        let started = std::time::Instant::now();
        let outcome = self.replica.write(command).await?;
        self.metrics
            .commit_latency
            .observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }
}

/// The answer to a write or strong read that did not succeed: 400 for an
/// invalid write, 412 for a failed precondition, else 503 (not
/// acknowledged; retry).
pub fn write_failed(error: &WriteError) -> Response<ResBody> {
    match error {
        WriteError::Refused(Refusal::Invalid { .. }) => {
            return response::text(StatusCode::BAD_REQUEST, error.to_string());
        }
        WriteError::Refused(Refusal::PreconditionFailed) => {
            return response::text(
                StatusCode::PRECONDITION_FAILED,
                "a precondition (If-Match, If-None-Match or If-Unmodified-Since) is false for \
                 the version current when the write was applied; nothing was written",
            );
        }
        WriteError::Refused(Refusal::NotFound { reason }) => {
            return response::text(StatusCode::NOT_FOUND, reason.clone());
        }
        _ => {}
    }
    let status = match error {
        WriteError::Refused(Refusal::Exhausted { .. }) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = response::text(status, error.to_string());
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// The route template of a request, used as a bounded metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Assets,
    Kv,
    Plugins,
    Events,
    Purge,
    Cluster,
    Queues,
    Backup,
    Internal,
    Healthz,
    Metrics,
    Unknown,
}

impl Route {
    /// Classifies a raw request path.
    pub fn of(path: &str) -> Self {
        match path {
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            "/events" => Route::Events,
            "/purge" => Route::Purge,
            "/cluster" => Route::Cluster,
            "/plugins" => Route::Plugins,
            "/queues" => Route::Queues,
            p if p.starts_with("/assets/") => Route::Assets,
            p if p.starts_with("/kv/") => Route::Kv,
            p if p.starts_with("/plugins/") => Route::Plugins,
            p if p.starts_with("/cluster/") => Route::Cluster,
            p if p.starts_with("/queues/") => Route::Queues,
            p if p.starts_with("/backup/") => Route::Backup,
            p if p.starts_with("/internal/") => Route::Internal,
            _ => Route::Unknown,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Route::Assets => "assets",
            Route::Kv => "kv",
            Route::Plugins => "plugins",
            Route::Events => "events",
            Route::Purge => "purge",
            Route::Cluster => "cluster",
            Route::Queues => "queues",
            Route::Backup => "backup",
            Route::Internal => "internal",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Unknown => "unknown",
        }
    }
}

const READ_ONLY: &str = "GET, HEAD";
const ASSET_METHODS: &str = "GET, HEAD, PUT, DELETE";

/// Whether `route` is served on `side`: with a peer listener, the regions'
/// own routes (Raft, forwarded writes, blobs, membership) are served there
/// and nowhere else, so its connection cap is theirs alone.
fn served(state: &AppState, side: Side, route: Route) -> bool {
    match (side, route) {
        (Side::Peer, Route::Internal | Route::Cluster | Route::Healthz) => true,
        (Side::Peer, _) => false,
        (Side::Public, Route::Internal) => !state.peer_listener,
        (Side::Public, _) => true,
    }
}

/// Answers one request that arrived on `side`.
pub async fn dispatch(
    state: &Arc<AppState>,
    side: Side,
    route: Route,
    req: Request<Incoming>,
) -> Response<ResBody> {
    if !served(state, side, route) {
        let message = match side {
            Side::Peer => "this is the peer listener: it serves /internal/*, /cluster and /healthz",
            Side::Public => "peer traffic is served on the peer listener ([peer] listen)",
        };
        return response::text(StatusCode::NOT_FOUND, message);
    }
    let method = req.method().clone();
    // A peer certificate reads `/cluster` (bootstrap and membership
    // probes); the peer listener serves nothing else it could read.
    let from_peer = req.extensions().get::<PeerIdentity>().is_some();
    if is_read(&method)
        && matches!(
            route,
            Route::Kv
                | Route::Plugins
                | Route::Events
                | Route::Cluster
                | Route::Queues
                | Route::Metrics
        )
        && !from_peer
        && let Err(denied) = auth::require(
            req.headers(),
            &state.credentials,
            Scope::Read,
            "reading this",
        )
    {
        return denied;
    }
    match route {
        Route::Healthz if is_read(&method) => ops::healthz(state, &method).await,
        Route::Metrics if is_read(&method) => ops::metrics(state, &method),
        Route::Healthz | Route::Metrics => response::method_not_allowed(READ_ONLY),
        Route::Assets => {
            let name = req.uri().path()["/assets/".len()..].to_string();
            match method {
                Method::GET | Method::HEAD => assets::get(state, &name, &req).await,
                Method::PUT => assets::put(state, &name, req).await,
                Method::DELETE => assets::delete(state, &name, &req).await,
                _ => response::method_not_allowed(ASSET_METHODS),
            }
        }
        Route::Kv => kv::dispatch(state, req).await,
        Route::Plugins => plugins::dispatch(state, req).await,
        Route::Events if is_read(&method) => events::get(state, &req).await,
        Route::Events => response::method_not_allowed(READ_ONLY),
        Route::Purge if method == Method::POST => ops::purge(state, req).await,
        Route::Purge => response::method_not_allowed("POST"),
        Route::Cluster => cluster::dispatch(state, req).await,
        Route::Queues => queues::dispatch(state, req).await,
        Route::Backup => backup::dispatch(state, req).await,
        Route::Internal => internal::dispatch(state, req).await,
        Route::Unknown => response::text(
            StatusCode::NOT_FOUND,
            format!(
                "no route for {}; the origin serves /assets/<name>, /kv/<namespace>/<key>, \
                 /plugins/<name>, /queues/<name>, /events, /purge, /cluster, /healthz and \
                 /metrics",
                req.uri().path()
            ),
        ),
    }
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}
