//! Binding, the Raft node, the listeners and graceful shutdown.
//!
//! Connections are served by [`crate::listen`] (hyper-util's auto builder
//! under the listener limits), so HTTP/1.1 and cleartext HTTP/2 (prior
//! knowledge) share a port. The Raft RPCs between regions arrive on the
//! peer listener when `[peer]` configures one, else on the public port.
//! Each request passes through [`handle`], which adds the access log line
//! and metrics around the router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::credentials::{Credentials, RELOAD_INTERVAL as RELOAD_TOKENS};
use crate::listen::{self, Listener, Stop};
use crate::metrics::{Metrics, RequestLabels, RouteLabels, method_label};
use crate::peer_tls::{PeerTls, RELOAD_INTERVAL as RELOAD_PEER_TLS};
use crate::peers::http::PeerAuth;
use crate::public_tls::{PublicTls, RELOAD_INTERVAL as RELOAD_PUBLIC_TLS};
use crate::raft::{Replica, ReplicaError};
use crate::reload;
use crate::response::ResBody;
use crate::routes::{self, AppState, Route, Side};
use crate::store::Store;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] service_base::config_file::FieldError),
    #[error("cannot open data directory {dir}: {source}")]
    DataDir {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open blob storage: {0}")]
    Storage(#[source] std::io::Error),
    #[error("{0}")]
    Tokens(#[from] crate::credentials::TokensFileError),
    #[error("{0}")]
    PeerTls(#[from] crate::peer_tls::PeerTlsError),
    #[error("{0}")]
    PublicTls(#[from] crate::public_tls::PublicTlsError),
    #[error("cannot start replication: {0}")]
    Replica(#[from] ReplicaError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The origin HTTP server.
#[derive(Debug)]
pub struct Server;

/// A started server; dropping it without [`RunningServer::shutdown`] leaves
/// the listeners running until the runtime ends.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    peer_addr: Option<SocketAddr>,
    stop: Stop,
    tasks: Vec<JoinHandle<()>>,
    replica: Replica,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

impl Server {
    /// Binds `config.listen` and, with `[peer]`, the peer listener (port 0
    /// picks a free port), then starts as [`Server::start_on`] does.
    pub async fn start(config: Config) -> Result<RunningServer, StartError> {
        config.validate()?;
        let listener = bind(config.listen).await?;
        Self::start_on(config, listener).await
    }

    /// Starts on an already bound public `listener`, binding the peer
    /// listener `[peer]` names, if any.
    pub async fn start_on(
        config: Config,
        listener: TcpListener,
    ) -> Result<RunningServer, StartError> {
        let peer = match &config.peer {
            Some(p) => Some(bind(p.listen).await?),
            None => None,
        };
        Self::start_on_listeners(config, listener, peer).await
    }

    /// Opens the store and the Raft node and serves on `public` (and on
    /// `peer`, which `config.peer` must then describe) in the background.
    /// Tests bind listeners first so they can list every region's address
    /// in the cluster config before any region starts.
    pub async fn start_on_listeners(
        config: Config,
        public: TcpListener,
        peer: Option<TcpListener>,
    ) -> Result<RunningServer, StartError> {
        config.validate()?;
        let local_addr = public.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let (node_id, members) = match &config.cluster {
            Some(c) => (c.node_id, Some(c.members.clone())),
            None => (1, None),
        };
        let peer = match (peer, config.peer.clone()) {
            (Some(socket), Some(p)) => {
                let addr = socket.local_addr().map_err(|source| StartError::Bind {
                    addr: p.listen,
                    source,
                })?;
                let tls = p
                    .tls
                    .map(|files| PeerTls::load(files, node_id))
                    .transpose()?;
                Some((addr, socket, p.limits, tls))
            }
            (Some(_), None) => {
                return Err(service_base::config_file::FieldError::new(
                    "peer",
                    "a peer listener was given but the config has no [peer] section",
                )
                .into());
            }
            (None, _) => None,
        };
        let peer_addr = peer.as_ref().map(|(addr, ..)| *addr);
        let peer_tls = peer.as_ref().and_then(|(.., tls)| tls.clone());
        let public_tls = config.tls.clone().map(PublicTls::load).transpose()?;
        let credentials = Arc::new(Credentials::new(
            &config.token,
            peer_tls.is_none(),
            config.read_token.as_deref(),
            config.tokens_file.as_deref(),
        )?);
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            dir: config.data_dir.clone(),
            source,
        })?;
        let store = Store::open(&config).map_err(StartError::Storage)?;
        let members =
            members.unwrap_or_else(|| [(1, peer_addr.unwrap_or(local_addr).to_string())].into());
        let auth = match &peer_tls {
            Some(tls) => PeerAuth::Tls(tls.clone()),
            None => PeerAuth::Token(config.token.clone()),
        };
        let raft_dir = config.data_dir.join("raft");
        let replica = Replica::start(
            &raft_dir,
            node_id,
            members,
            config.raft,
            config.feed,
            auth.clone(),
        )
        .await?;
        let stop = Stop {
            graceful: CancellationToken::new(),
            kill: CancellationToken::new(),
        };
        let metrics = Arc::new(Metrics::new());
        let limits = config.limits;
        let mut tasks = Vec::new();
        if config.tokens_file.is_some() {
            let (credentials, stop) = (credentials.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                reload::watch("tokens_file", RELOAD_TOKENS, stop, || credentials.reload()).await
            }));
        }
        if let Some(tls) = &public_tls {
            let (tls, stop) = (tls.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                reload::watch("tls certificate", RELOAD_PUBLIC_TLS, stop, || tls.reload()).await
            }));
        }
        if let Some(tls) = &peer_tls {
            let (tls, stop) = (tls.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                reload::watch("peer certificates", RELOAD_PEER_TLS, stop, || tls.reload()).await
            }));
        }
        tasks.extend(crate::blob_gc::spawn(
            config.blob_gc,
            store.blobs.clone(),
            replica.clone(),
            metrics.clone(),
            stop.clone(),
        ));
        let state = Arc::new(AppState {
            config,
            credentials,
            store,
            metrics: metrics.clone(),
            replica: replica.clone(),
            peers: crate::peers::PeerClient::new(&auth),
            peer_tls: peer_tls.clone(),
            public_tls: public_tls.clone(),
            stopping: stop.graceful.clone(),
            peer_listener: peer.is_some(),
            health_round: Default::default(),
        });
        tasks.push(spawn_listener(
            Listener {
                socket: public,
                limits,
                name: "public",
                tls: public_tls.map(|t| Arc::new(t.server_config())),
            },
            Side::Public,
            &state,
            &stop,
        ));
        if let Some((_, socket, limits, tls)) = peer {
            let listener = Listener {
                socket,
                limits,
                name: "peer",
                tls: tls.map(|t| Arc::new(t.server_config())),
            };
            tasks.push(spawn_listener(listener, Side::Peer, &state, &stop));
        }
        Ok(RunningServer {
            local_addr,
            peer_addr,
            stop,
            tasks,
            replica,
        })
    }
}

fn spawn_listener(
    listener: Listener,
    side: Side,
    state: &Arc<AppState>,
    stop: &Stop,
) -> JoinHandle<()> {
    let metrics = state.metrics.clone();
    let state = state.clone();
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, side, req).await) }
    });
    tokio::spawn(listen::serve(listener, metrics, service, stop.clone()))
}

impl RunningServer {
    /// The address the public API is listening on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The peer listener's address, when `[peer]` configures one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// This region's Raft node (for tests and embedding).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Stops accepting connections, lets in-flight requests finish (up to
    /// the drain timeout), then stops the Raft node.
    pub async fn shutdown(self) {
        self.stop.graceful.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "origin listener ended abnormally");
            }
        }
        stop_raft(&self.replica).await;
    }

    /// Stops at once, like a crash: open connections are cut and in-flight
    /// requests get no answer. What was fsynced stays on disk. Failover
    /// tests use it to kill a region in-process.
    pub async fn kill(self) {
        self.stop.kill.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        stop_raft(&self.replica).await;
    }
}

async fn stop_raft(replica: &Replica) {
    if let Err(e) = replica.raft.shutdown().await {
        tracing::error!(error = %e, "Raft node ended abnormally");
    }
}

/// Routes one request, then records the access log line and metrics.
async fn handle(state: &Arc<AppState>, side: Side, req: Request<Incoming>) -> Response<ResBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = Route::of(&path);
    let response = routes::dispatch(state, side, route, req).await;
    let elapsed = started.elapsed();

    let status = response.status().as_u16();
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            method: method_label(&method),
            route: route.label(),
            status,
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels {
            method: method_label(&method),
            route: route.label(),
        })
        .observe(elapsed.as_secs_f64());
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| response.body().size_hint().exact())
        .unwrap_or(0);
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status,
        bytes,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );

    let sent = m.bytes_sent.clone();
    response.map(|body| {
        body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                sent.inc_by(data.len() as u64);
            }
            frame
        })
        .boxed_unsync()
    })
}
