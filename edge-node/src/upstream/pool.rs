//! One origin pool: connection pooling (hyper-util's client), selection,
//! passive health (connect and TLS failures) and retries.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::capped::{self, Caps};
use super::tls::{self, Connector, TlsFailure};

use crate::body::Body;
use crate::config::PoolConfig;
use crate::metrics::Metrics;

/// Why a fetch from a pool failed; every variant is the origin's fault
/// (502/504 to the client), never the client's.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("pool `{pool}`: no origin answered ({tried} tried); last error: {last}")]
    Unreachable {
        pool: String,
        tried: usize,
        last: String,
    },
    #[error("pool `{pool}`: origin {origin} did not send response headers within {timeout:?}")]
    Timeout {
        pool: String,
        origin: Authority,
        timeout: Duration,
    },
    /// Every origin tried had all of its `max_connections` in use.
    #[error("pool `{pool}`: {last}")]
    Saturated { pool: String, last: String },
}

/// Health of one origin.
pub struct Origin {
    pub authority: Authority,
    /// `https://`: reached over TLS.
    pub tls: bool,
    /// The TLS failure last logged for requests and for health checks, so
    /// a check failing the same way every interval logs once, not once a
    /// second.
    last_tls_failure: Mutex<[Option<String>; 2]>,
    /// Whether `last_tls_failure` holds anything, so successful requests
    /// (the hot path) clear it without taking the lock.
    tls_failure_logged: AtomicBool,
    up: AtomicBool,
    successes: AtomicU32,
    failures: AtomicU32,
}

impl Origin {
    pub fn scheme(&self) -> Scheme {
        if self.tls {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records a check or request result; returns the new state when it
    /// changed (after `rise` successes or `fall` failures in a row).
    pub fn record(&self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
            (!self.is_up() && n >= rise).then(|| {
                self.up.store(true, Ordering::Relaxed);
                true
            })
        } else {
            self.successes.store(0, Ordering::Relaxed);
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            (self.is_up() && n >= fall).then(|| {
                self.up.store(false, Ordering::Relaxed);
                false
            })
        }
    }
}

/// Which traffic met a TLS failure, for the log.
#[derive(Debug, Clone, Copy)]
pub(super) enum TlsCheck {
    Request = 0,
    Health = 1,
}

pub struct Pool {
    pub config: PoolConfig,
    pub origins: Vec<Origin>,
    next: AtomicUsize,
    client: Client<Connector, Body>,
    /// The same TLS settings without the connection cap, for health checks.
    health_client: Client<Connector, Body>,
    metrics: Arc<Metrics>,
    /// Permits for cache fills (`max_fills`).
    fills: Arc<tokio::sync::Semaphore>,
}

impl Pool {
    pub fn new(config: PoolConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        let caps = Caps::new(
            config.origins.iter().map(|o| &o.authority),
            config.max_connections,
            config.queue_timeout,
        );
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(config.max_connections)
            .build(tls::connector(&config, caps));
        let health_client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(tls::connector(&config, Caps::none()));
        let origins = config
            .origins
            .iter()
            .map(|a| Origin {
                authority: a.authority.clone(),
                tls: a.tls,
                last_tls_failure: Mutex::default(),
                tls_failure_logged: AtomicBool::new(false),
                up: AtomicBool::new(true),
                successes: AtomicU32::new(0),
                failures: AtomicU32::new(0),
            })
            .collect();
        let fills = Arc::new(tokio::sync::Semaphore::new(config.max_fills));
        let pool = Arc::new(Self {
            fills,
            config,
            origins,
            next: AtomicUsize::new(0),
            client,
            health_client,
            metrics,
        });
        for o in &pool.origins {
            pool.metrics
                .set_origin_up(&pool.config.name, &o.authority, true);
        }
        pool
    }

    /// How long a request may wait for an origin's response head.
    pub fn response_timeout(&self) -> Duration {
        self.config.response_timeout
    }

    pub fn between_bytes_timeout(&self) -> Duration {
        self.config.between_bytes_timeout
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// A permit to store one response from this pool, held until its fill
    /// ends; `None` when `max_fills` are running. Bounds what clients can
    /// make the edge download at once (e.g. `Range: bytes=0-0` on many large
    /// uncached objects, each of which would otherwise be fetched whole).
    pub fn try_fill(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.fills.clone().try_acquire_owned().ok()
    }

    pub(super) fn health_client(&self) -> &Client<Connector, Body> {
        &self.health_client
    }

    /// Origins in the order to try: healthy ones first, region by region in
    /// order of preference and round-robin within a region, then the ones
    /// marked down (if all are down, trying them beats failing blind). So
    /// traffic stays in the nearest region with a healthy origin, moves to
    /// the next when all of its origins are down, and returns once health
    /// checks see one of them rise again.
    fn order(&self) -> Vec<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let (mut up, mut down): (Vec<usize>, Vec<usize>) = self
            .config
            .regions
            .iter()
            .flat_map(|region| {
                let (base, n) = (region.origins.start, region.origins.len());
                (0..n).map(move |i| base + (start + i) % n)
            })
            .partition(|&i| self.origins[i].is_up());
        up.append(&mut down);
        up
    }

    /// Sends `req` (origin-form URI) to an origin of this pool. A request
    /// whose body can be replayed (`retry` true: no body) moves on to the
    /// next origin when one cannot be reached.
    pub async fn send(
        &self,
        req: Request<Body>,
        retry: bool,
    ) -> Result<Response<Incoming>, FetchError> {
        let (parts, body) = req.into_parts();
        let order = self.order();
        let attempts = if retry { order.len() } else { 1 };
        let mut body = Some(body);
        let mut last = String::new();
        let mut all_saturated = true;
        for (tried, &i) in order.iter().take(attempts).enumerate() {
            let origin = &self.origins[i];
            let uri = origin_uri(origin, &parts.uri);
            let mut r = Request::from_parts(
                parts.clone(),
                body.take().unwrap_or_else(crate::body::empty),
            );
            *r.uri_mut() = uri;
            let started = Instant::now();
            match tokio::time::timeout(self.config.response_timeout, self.client.request(r)).await {
                Ok(Ok(resp)) => {
                    self.metrics
                        .observe_origin(self.name(), started.elapsed(), "ok");
                    self.note(origin, true);
                    return Ok(resp);
                }
                Ok(Err(e)) if capped::saturated(&e).is_some() => {
                    // Busy, not broken: no failure counted against it.
                    self.metrics
                        .observe_origin(self.name(), started.elapsed(), "saturated");
                    last = capped::saturated(&e).expect("matched").to_string();
                    tracing::warn!(pool = self.name(), origin = %origin.authority, attempt = tried + 1, error = %last, "origin at its connection cap; trying the pool's next origin (raise max_connections if the origin has room)");
                }
                Ok(Err(e)) => {
                    all_saturated = false;
                    let failure = tls::tls_failure(&e);
                    let outcome = if failure.is_some() {
                        "tls_error"
                    } else {
                        "error"
                    };
                    self.metrics
                        .observe_origin(self.name(), started.elapsed(), outcome);
                    last = format!("{}: {}", origin.authority, error_chain(&e));
                    match &failure {
                        Some(f) => self.log_tls_failure(origin, TlsCheck::Request, f),
                        None => {
                            tracing::warn!(pool = self.name(), origin = %origin.authority, attempt = tried + 1, error = %last, "origin request failed")
                        }
                    }
                    // A certificate the edge refuses is as unusable as a
                    // refused connection, and fails the same way next time.
                    if e.is_connect() || failure.is_some() {
                        self.note(origin, false);
                    }
                }
                Err(_) => {
                    self.metrics
                        .observe_origin(self.name(), started.elapsed(), "timeout");
                    self.note(origin, false);
                    return Err(FetchError::Timeout {
                        pool: self.name().to_string(),
                        origin: origin.authority.clone(),
                        timeout: self.config.response_timeout,
                    });
                }
            }
        }
        if all_saturated {
            return Err(FetchError::Saturated {
                pool: self.name().to_string(),
                last,
            });
        }
        Err(FetchError::Unreachable {
            pool: self.name().to_string(),
            tried: attempts,
            last,
        })
    }

    /// Logs a TLS failure with `origin` during `check`, unless the last one
    /// logged for that kind of check was the same.
    pub(super) fn log_tls_failure(&self, origin: &Origin, check: TlsCheck, f: &TlsFailure) {
        let mut last = origin.last_tls_failure.lock().expect("not poisoned");
        let slot = &mut last[check as usize];
        if slot.as_deref() == Some(f.reason.as_str()) {
            return;
        }
        *slot = Some(f.reason.clone());
        origin.tls_failure_logged.store(true, Ordering::Relaxed);
        let what = match check {
            TlsCheck::Request => "request".to_string(),
            TlsCheck::Health => format!("health check GET {}", self.config.health_path),
        };
        tracing::warn!(
            pool = self.name(),
            origin = %format_args!("https://{}", origin.authority),
            check = %what,
            reason = %f.reason,
            action = f.hint,
            "TLS to origin failed; origin counted as down"
        );
    }

    pub(super) fn note(&self, origin: &Origin, ok: bool) {
        // Once it works again, the next TLS failure is news.
        if ok && origin.tls_failure_logged.swap(false, Ordering::Relaxed) {
            *origin.last_tls_failure.lock().expect("not poisoned") = Default::default();
        }
        if let Some(up) = origin.record(ok, self.config.rise, self.config.fall) {
            self.metrics
                .set_origin_up(self.name(), &origin.authority, up);
            if up {
                tracing::info!(pool = self.name(), origin = %origin.authority, "origin is up again");
            } else {
                tracing::warn!(pool = self.name(), origin = %origin.authority, "origin marked down; traffic goes to the pool's other origins");
            }
        }
    }
}

fn origin_uri(origin: &Origin, uri: &Uri) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(origin.scheme());
    parts.authority = Some(origin.authority.clone());
    parts.path_and_query = uri
        .path_and_query()
        .cloned()
        .or_else(|| Some("/".parse().expect("valid")));
    Uri::from_parts(parts).expect("scheme, authority and path make a valid URI")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
