//! Active health checks: an HTTP GET of each endpoint's health URL on an
//! interval, with rise/fall thresholds so one lost packet does not move
//! traffic. The state is a flat array of atomics read lock-free by every
//! query.
//!
//! An endpoint with a health URL starts *unknown*: it is not answered (nor
//! counted as up) until its first check passes, and answers that involve
//! it get the short degraded TTL meanwhile, so a fresh server or a reload
//! never hands out an endpoint nobody has checked for a full TTL (while
//! nothing at all is known up, the geo answer fails open with every
//! endpoint, as it does when all are down, with that short TTL). The first
//! check decides at once (up or down); later ones move it only after
//! `rise` or `fall` results in a row.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::config::{Config, HealthConfig};
use crate::metrics::Metrics;

/// An endpoint's health as the atomics hold it.
const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Health per endpoint, indexed `[region][endpoint]`.
#[derive(Debug)]
pub struct Health {
    regions: Vec<Vec<AtomicU8>>,
    /// Bumped after every change, so answers prepared from one state
    /// (the fast path's) can tell they are out of date.
    generation: AtomicU64,
}

impl Health {
    /// Endpoints without a health URL are up; the others unknown until
    /// their first check.
    pub fn new(config: &Config) -> Self {
        Self {
            regions: config
                .regions
                .iter()
                .map(|r| {
                    r.endpoints
                        .iter()
                        .map(|e| AtomicU8::new(if e.health.is_some() { UNKNOWN } else { UP }))
                        .collect()
                })
                .collect(),
            generation: AtomicU64::new(0),
        }
    }

    /// Copies the state of endpoints that `old` also had (same region name,
    /// address and health URL).
    pub fn inherit(&self, config: &Config, old_config: &Config, old: &Health) {
        for (r, region) in config.regions.iter().enumerate() {
            let Some(old_r) = old_config
                .regions
                .iter()
                .position(|o| o.name == region.name)
            else {
                continue;
            };
            for (e, endpoint) in region.endpoints.iter().enumerate() {
                let old_endpoints = &old_config.regions[old_r].endpoints;
                if let Some(old_e) = old_endpoints
                    .iter()
                    .position(|o| o.address == endpoint.address)
                    && endpoint.health == old_endpoints[old_e].health
                {
                    let state = old.regions[old_r][old_e].load(Ordering::Relaxed);
                    self.regions[r][e].store(state, Ordering::Relaxed);
                }
            }
        }
    }

    /// Changes so far; read before the flags it covers.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn endpoint_up(&self, region: usize, endpoint: usize) -> bool {
        self.regions[region][endpoint].load(Ordering::Relaxed) == UP
    }

    pub fn region_up(&self, region: usize) -> bool {
        self.regions[region]
            .iter()
            .any(|e| e.load(Ordering::Relaxed) == UP)
    }

    /// Whether every endpoint of `regions` passes its checks (unknown ones
    /// do not); answers get the short degraded TTL otherwise, so clients
    /// come back soon.
    pub fn all_up(&self, regions: &[usize]) -> bool {
        regions.iter().all(|&r| {
            self.regions[r]
                .iter()
                .all(|e| e.load(Ordering::Relaxed) == UP)
        })
    }
}

/// Starts one checker task per endpoint that has a health URL; dropping
/// the returned set stops them (on reload and shutdown).
pub fn spawn_checks(config: &Config, health: Arc<Health>, metrics: Arc<Metrics>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let mut builder = reqwest::Client::builder()
        .timeout(config.health.timeout)
        .connect_timeout(config.health.timeout)
        // A redirect is not a healthy answer: a 302 to a login or parking
        // page that answers 200 says nothing about the endpoint.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(ca) = &config.health.ca {
        // The operator's CAs replace the built-in roots: an endpoint with a
        // public certificate it did not list is not the one it meant.
        builder = builder.tls_built_in_root_certs(false);
        for cert in ca.iter() {
            builder = builder.add_root_certificate(cert.clone());
        }
    }
    let client = builder
        .build()
        .expect("rustls with parsed roots and no proxies always builds");
    for (r, region) in config.regions.iter().enumerate() {
        for (e, endpoint) in region.endpoints.iter().enumerate() {
            let Some(url) = endpoint.health.clone() else {
                continue;
            };
            let check = Checker {
                client: client.clone(),
                url,
                settings: config.health.clone(),
                health: health.clone(),
                metrics: metrics.clone(),
                region: r,
                endpoint: e,
                region_name: region.name.clone(),
                address: endpoint.address.to_string(),
            };
            tasks.spawn(check.run());
        }
    }
    tasks
}

struct Checker {
    client: reqwest::Client,
    url: reqwest::Url,
    settings: HealthConfig,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    region: usize,
    endpoint: usize,
    region_name: String,
    address: String,
}

impl Checker {
    async fn run(self) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut successes, mut failures) = (0u32, 0u32);
        let mut last_error = None;
        loop {
            ticker.tick().await;
            let result = self.probe().await;
            let ok = result.is_ok();
            let flag = &self.health.regions[self.region][self.endpoint];
            let state = flag.load(Ordering::Relaxed);
            if ok {
                successes += 1;
                failures = 0;
            } else {
                failures += 1;
                successes = 0;
            }
            if let Err(error) = result {
                last_error = Some(error);
            }
            let change = match state {
                UNKNOWN => Some(ok),
                UP if failures >= self.settings.fall => Some(false),
                DOWN if successes >= self.settings.rise => Some(true),
                _ => None,
            };
            if let Some(now_up) = change {
                flag.store(if now_up { UP } else { DOWN }, Ordering::Relaxed);
                self.health.generation.fetch_add(1, Ordering::Release);
                // The first result is not a change of health (alerts on
                // changes must not fire at every start or reload).
                self.metrics.health_known(
                    &self.region_name,
                    &self.address,
                    now_up,
                    state != UNKNOWN,
                );
                let region_up = self.health.region_up(self.region);
                if now_up {
                    tracing::info!(region = %self.region_name, endpoint = %self.address, region_up, "endpoint up");
                } else {
                    let error = last_error
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    tracing::warn!(region = %self.region_name, endpoint = %self.address, region_up, url = %self.url, %error, "endpoint down");
                }
            }
        }
    }

    /// One check; the error says why it failed (a TLS failure carries
    /// rustls' reason, e.g. "invalid peer certificate: UnknownIssuer").
    async fn probe(&self) -> Result<(), ProbeError> {
        let request = self.client.get(self.url.clone()).send();
        match tokio::time::timeout(self.settings.timeout + Duration::from_millis(50), request).await
        {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(ProbeError::Status(response.status())),
            Ok(Err(e)) => Err(ProbeError::Request(e)),
            Err(_) => Err(ProbeError::Timeout(self.settings.timeout)),
        }
    }
}

/// Why one health check failed.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    /// Anything but 2xx, redirects included.
    #[error("answered {0}")]
    Status(reqwest::StatusCode),
    #[error("{}", error_chain(.0))]
    Request(reqwest::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// `e` and its sources, so the rustls reason under reqwest's "error
/// sending request" reaches the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
