//! Starting and stopping: binds UDP and TCP on each configured address (a
//! port 0 address gets one ephemeral port for both), the metrics listener,
//! health checks and the file watcher.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::fast::{self, FastPath};
use crate::handler::Handler;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::reload::Reloader;
use crate::state::Snapshot;
use crate::{Error, metrics_http, tcp};

/// Tries before giving up on finding a port free for both UDP and TCP.
const PORT_PAIR_TRIES: usize = 20;

#[derive(Debug)]
pub struct Server;

/// A started server; dropping it does not stop it, call [`shutdown`](Self::shutdown).
pub struct RunningServer {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    reloader: Arc<Reloader>,
    dns: hickory_server::Server<Handler>,
    fast: Option<FastPath>,
    background: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("metrics", &self.metrics_addr)
            .finish()
    }
}

impl Server {
    /// Compiles the config (reading the database), binds every socket and
    /// starts serving.
    pub async fn start(config: Config) -> Result<RunningServer, Error> {
        let tcp_limits = config.tcp.clone();
        let rate_limit = config
            .rate_limit
            .as_ref()
            .map(|c| Arc::new(RateLimiter::new(c)));
        let udp_threads = config.udp_threads;
        let dns_addrs = config.dns.clone();
        let metrics_listen = config.metrics;
        let snapshot = tokio::task::spawn_blocking(move || Snapshot::build(config, None))
            .await
            .map_err(|e| Error::Reload(e.to_string()))??;
        let metrics = Arc::new(Metrics::new());
        let state = Arc::new(ArcSwap::from_pointee(snapshot));

        let mut dns = hickory_server::Server::new(Handler {
            state: state.clone(),
            metrics: metrics.clone(),
        });
        let tcp_handler = Arc::new(Handler {
            state: state.clone(),
            metrics: metrics.clone(),
        });
        let (mut udp, mut tcp) = (Vec::new(), Vec::new());
        let mut background = Vec::new();
        let mut worker_sockets = Vec::new();
        for addr in dns_addrs {
            let local =
                |r: std::io::Result<SocketAddr>| r.map_err(|source| Error::Bind { addr, source });
            let listener = if udp_threads > 0 {
                let (sockets, listener) = bind_workers(addr, udp_threads).await?;
                udp.push(local(sockets[0].local_addr())?);
                worker_sockets.extend(sockets);
                listener
            } else {
                let (socket, listener) = bind_pair(addr).await?;
                udp.push(local(socket.local_addr())?);
                dns.register_socket(socket);
                listener
            };
            tcp.push(local(listener.local_addr())?);
            background.push(tokio::spawn(tcp::serve(
                listener,
                tcp_limits.clone(),
                tcp_handler.clone(),
                metrics.clone(),
            )));
        }
        let fast = if worker_sockets.is_empty() {
            None
        } else {
            Some(FastPath::start(
                worker_sockets,
                state.clone(),
                metrics.clone(),
                rate_limit,
            )?)
        };

        let mut metrics_addr = None;
        if let Some(addr) = metrics_listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind { addr, source })?;
            metrics_addr = Some(
                listener
                    .local_addr()
                    .map_err(|source| Error::Bind { addr, source })?,
            );
            background.push(tokio::spawn(metrics_http::serve(listener, metrics.clone())));
        }
        let reloader = Arc::new(Reloader::new(state, metrics));
        background.push(tokio::spawn(reloader.clone().watch()));
        Ok(RunningServer {
            udp,
            tcp,
            metrics_addr,
            reloader,
            dns,
            fast,
            background,
        })
    }
}

/// The UDP workers' sockets and a TCP listener on one port, as
/// [`bind_pair`] does for a single UDP socket.
async fn bind_workers(
    addr: SocketAddr,
    threads: usize,
) -> Result<(Vec<std::net::UdpSocket>, TcpListener), Error> {
    let bind_err = |source| Error::Bind { addr, source };
    let mut last = None;
    for _ in 0..PORT_PAIR_TRIES {
        let sockets = fast::bind(addr, threads)?;
        let port = sockets[0].local_addr().map_err(bind_err)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((sockets, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(bind_err(e)),
        }
    }
    Err(bind_err(last.expect("at least one try")))
}

/// UDP and TCP on the same address; for port 0 the TCP listener takes the
/// port the UDP socket was given, trying again if that one is taken.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    let bind_err = |source| Error::Bind { addr, source };
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await.map_err(bind_err)?;
        let tcp = TcpListener::bind(addr).await.map_err(bind_err)?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..PORT_PAIR_TRIES {
        let udp = UdpSocket::bind(addr).await.map_err(bind_err)?;
        let port = udp.local_addr().map_err(bind_err)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(bind_err(last.expect("at least one try")))
}

impl RunningServer {
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Re-reads the config file (and database); on error the previous
    /// configuration keeps serving.
    pub async fn reload(&self) -> Result<(), Error> {
        self.reloader.reload().await
    }

    /// Serves `config` from now on (listen addresses excepted).
    pub async fn apply(&self, config: Config) -> Result<(), Error> {
        self.reloader.apply(config).await
    }

    /// The Prometheus text of this server's metrics.
    pub fn metrics_text(&self) -> String {
        self.reloader.metrics.render()
    }

    /// Stops accepting, lets in-flight UDP queries finish, closes TCP
    /// connections, stops the checkers.
    pub async fn shutdown(mut self) {
        for task in &self.background {
            task.abort();
        }
        if let Some(fast) = self.fast.take() {
            let _ = tokio::task::spawn_blocking(move || fast.stop()).await;
        }
        if let Err(error) = self.dns.shutdown_gracefully().await {
            tracing::debug!(%error, "dns shutdown");
        }
    }
}
