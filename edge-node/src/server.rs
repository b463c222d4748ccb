//! Starting and stopping an edge node: binds every listener before serving
//! (so a bad address fails the start, not a later request), opens the cache,
//! starts health checks, and shuts down gracefully.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::cache::Cache;
use crate::config::Config;
use crate::feed;
use crate::listen::ListenerMetrics;
use crate::listen::{self, ConnInfo, Limits, TlsAcceptor};
use crate::metrics::Metrics;
use crate::plugin::Runtime;
use crate::proxy::{Proxy, Router, Site};
use crate::upstream::Pool;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot bind the {listener} listener to {addr}: {source} (is another process using it?)"
    )]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the disk cache in {dir}: {source}")]
    Cache {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] listen::TlsError),
    #[error("plugins: {0}")]
    Plugin(#[from] crate::plugin::RuntimeError),
}

/// Entry point for binaries and tests.
pub struct Server;

/// A started edge node.
pub struct RunningServer {
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    admin: SocketAddr,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Server {
    pub async fn start(config: Config) -> Result<RunningServer, StartError> {
        let listener_metrics = Arc::new(ListenerMetrics::default());
        let feed_metrics = Arc::new(feed::FeedMetrics::default());
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(TlsAcceptor::new(t)?)),
            None => None,
        };
        let cert_expiry = tls
            .as_ref()
            .map(|t| t.expiry_collector())
            .unwrap_or_default();
        let metrics = Arc::new(Metrics::new(&[
            &*listener_metrics,
            &*feed_metrics,
            &cert_expiry,
        ]));
        let cache = Arc::new(Cache::open(&config.cache).map_err(|source| {
            StartError::Cache {
                dir: config
                    .cache
                    .disk
                    .as_ref()
                    .map(|d| d.dir.clone())
                    .unwrap_or_default(),
                source,
            }
        })?);
        let stop = CancellationToken::new();
        let pools: Vec<Arc<Pool>> = config
            .pools
            .iter()
            .map(|p| Pool::new(p.clone(), metrics.clone()))
            .collect();
        for p in &pools {
            p.spawn_health_checks(stop.clone());
        }
        let plugins = Runtime::start(&config, &pools, cache.clone(), metrics.clone())?;
        if let Some(rt) = &plugins {
            rt.spawn_watcher(config.plugin_runtime.reload_interval, stop.clone());
        }
        if let Some(consumers) =
            crate::plugin::Consumers::start(&config, &pools, cache.clone(), metrics.clone())?
        {
            consumers.spawn(stop.clone());
        }
        if let Some(feed) = &config.feed {
            let installs = match feed.plugins {
                true => config.plugins.iter().map(|p| p.name.clone()).collect(),
                false => Vec::new(),
            };
            feed::Follower::new(
                pools[feed.pool].clone(),
                cache.clone(),
                plugins.clone(),
                installs,
                feed_metrics.clone(),
                feed.token.clone(),
            )
            .spawn(stop.clone());
        }
        let router = Router::new(
            config
                .sites
                .iter()
                .map(|s| {
                    let site = Site::new(
                        s.hosts.clone(),
                        s.path_prefix.clone(),
                        pools[s.pool].clone(),
                    )
                    .honoring_client_cache_control(s.honor_client_cache_control)
                    .stripping_targeted_cache_control(s.strip_targeted_cache_control);
                    match &plugins {
                        Some(rt) => {
                            let chain = s
                                .plugins
                                .iter()
                                .filter_map(|&i| rt.slot(&config.plugins[i].name))
                                .collect();
                            site.with_plugins(chain, s.plugin_config.clone())
                        }
                        None => site,
                    }
                })
                .collect(),
        );
        let proxy = Arc::new(Proxy::new(
            router,
            cache.clone(),
            metrics.clone(),
            config.max_body_bytes,
            plugins.clone(),
        ));
        let limits = Arc::new(config.limits.clone());

        let bind = |listener: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    listener,
                    addr,
                    source,
                })
        };
        let http = match config.listen_http {
            Some(a) => Some(bind("http", a).await?),
            None => None,
        };
        let https = match config.listen_https {
            Some(a) => Some(bind("https", a).await?),
            None => None,
        };
        let admin_listener = bind("admin", config.admin.listen).await?;
        let addr = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        let (http_addr, https_addr) = (addr(&http), addr(&https));
        let admin_addr = admin_listener
            .local_addr()
            .expect("bound socket has an address");

        let mut tasks = JoinSet::new();
        for (listener, tls) in [(http, None), (https, tls.clone())] {
            let Some(listener) = listener else { continue };
            let proxy = proxy.clone();
            let make = move |conn: ConnInfo| {
                let proxy = proxy.clone();
                service_fn(move |req| {
                    let (proxy, conn) = (proxy.clone(), conn.clone());
                    async move { Ok::<_, Infallible>(proxy.handle(req, conn).await) }
                })
            };
            tasks.spawn(listen::serve(
                listener,
                tls,
                limits.clone(),
                listener_metrics.clone(),
                make,
                stop.clone(),
            ));
        }
        let admin = Arc::new(Admin {
            cache,
            metrics: metrics.clone(),
            token: config.admin.token.clone(),
            plugins,
        });
        let make_admin = move |_: ConnInfo| {
            let admin = admin.clone();
            service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.handle(req).await) }
            })
        };
        tasks.spawn(listen::serve(
            admin_listener,
            tls.clone().filter(|_| config.admin.tls),
            Arc::new(Limits::default()),
            listener_metrics.clone(),
            make_admin,
            stop.clone(),
        ));
        tracing::info!(http = ?http_addr, https = ?https_addr, admin = %admin_addr, "edge node started");
        Ok(RunningServer {
            http: http_addr,
            https: https_addr,
            admin: admin_addr,
            stop,
            tasks,
        })
    }
}

impl RunningServer {
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// A handle that stops the server when cancelled (signal handlers).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops accepting, lets in-flight requests finish, and returns.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Runs until the stop token is cancelled, then drains.
    pub async fn wait(mut self) {
        self.stop.cancelled().await;
        while self.tasks.join_next().await.is_some() {}
    }
}
