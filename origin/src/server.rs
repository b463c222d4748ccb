//! Binding, the Raft node, the accept loop and graceful shutdown.
//!
//! Connections are served by hyper-util's auto builder, so HTTP/1.1 and
//! cleartext HTTP/2 (prior knowledge) share one port; the Raft RPCs between
//! regions arrive on the same port. Each request passes through [`handle`],
//! which adds the access log line and metrics around the router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::{Metrics, RequestLabels, RouteLabels, method_label};
use crate::raft::{Replica, ReplicaError};
use crate::response::ResBody;
use crate::routes::{self, AppState, Route};
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
/// the accept loop running until the runtime ends.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    killed: CancellationToken,
    task: JoinHandle<()>,
    replica: Replica,
}

impl Server {
    /// Binds `config.listen` (port 0 picks a free port), then starts as
    /// [`Server::start_on`] does.
    pub async fn start(config: Config) -> Result<RunningServer, StartError> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Self::start_on(config, listener).await
    }

    /// Opens the store and the Raft node and serves on `listener` in the
    /// background. Tests bind listeners first so they can list every
    /// region's address in the cluster config before any region starts.
    pub async fn start_on(
        config: Config,
        listener: TcpListener,
    ) -> Result<RunningServer, StartError> {
        config.validate()?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            dir: config.data_dir.clone(),
            source,
        })?;
        let store = Store::open(&config).map_err(StartError::Storage)?;
        let (node_id, members) = match &config.cluster {
            Some(c) => (c.node_id, c.members.clone()),
            None => (1, [(1, local_addr.to_string())].into()),
        };
        let raft_dir = config.data_dir.join("raft");
        let replica = Replica::start(
            &raft_dir,
            node_id,
            members,
            config.raft,
            config.token.clone(),
        )
        .await?;
        let state = Arc::new(AppState {
            config,
            store,
            metrics: Metrics::new(),
            replica: replica.clone(),
            peers: crate::peers::PeerClient::new(),
            stopping: CancellationToken::new(),
        });
        let (stop, stopped) = oneshot::channel();
        let killed = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, state, stopped, killed.clone()));
        Ok(RunningServer {
            local_addr,
            stop,
            killed,
            task,
            replica,
        })
    }
}

impl RunningServer {
    /// The address the server is listening on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This region's Raft node (for tests and embedding).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Stops accepting connections, lets in-flight requests finish, then
    /// stops the Raft node.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "origin accept loop ended abnormally");
        }
        stop_raft(&self.replica).await;
    }

    /// Stops at once, like a crash: open connections are cut and in-flight
    /// requests get no answer. What was fsynced stays on disk. Failover
    /// tests use it to kill a region in-process.
    pub async fn kill(self) {
        self.killed.cancel();
        let _ = self.task.await;
        stop_raft(&self.replica).await;
    }
}

async fn stop_raft(replica: &Replica) {
    if let Err(e) = replica.raft.shutdown().await {
        tracing::error!(error = %e, "Raft node ended abnormally");
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    mut stopped: oneshot::Receiver<()>,
    killed: CancellationToken,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually out of file descriptors: back off briefly
                    // instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => {
                state.stopping.cancel();
                break;
            }
            _ = killed.cancelled() => return,
        };
        // Heads and bodies go out as separate writes: without NODELAY every
        // small response waits ~40 ms for the peer's delayed ACK.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(&state, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let killed = killed.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = conn => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = killed.cancelled() => {}
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Routes one request, then records the access log line and metrics.
async fn handle(state: &Arc<AppState>, req: Request<Incoming>) -> Response<ResBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = Route::of(&path);
    let response = routes::dispatch(state, route, req).await;
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
