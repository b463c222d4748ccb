//! GeoDNS figures in a registry owned by each server, so several servers in
//! one test process keep separate counts.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::fast::WorkerCounters;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// Query type name (`A`, `AAAA`, …); unknown types are `OTHER` so
    /// clients cannot grow the label set.
    pub qtype: &'static str,
    pub rcode: &'static str,
    pub transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    pub region: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub region: String,
    pub endpoint: String,
}

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub queries: Family<QueryLabels, Counter>,
    pub answers: Family<RegionLabels, Counter>,
    /// Answers given with every endpoint because no region was healthy.
    pub fail_open: Counter,
    pub endpoint_up: Family<EndpointLabels, Gauge>,
    pub health_changes: Family<EndpointLabels, Counter>,
    /// Seconds spent building each answer (decoding to sending).
    pub latency: Histogram,
    pub reloads: Family<ReloadLabels, Counter>,
    /// UDP queries the fast path answered itself (also in `queries`).
    pub fast_answers: Counter,
    /// UDP replies over their prefix's rate, by what became of them.
    pub rate_limited: Family<ActionLabels, Counter>,
    /// Open TCP connections.
    pub tcp_connections: Gauge,
    /// TCP connections closed by a limit (`per_client`, `idle`, `io`,
    /// `lifetime`).
    pub tcp_closed: Family<ReasonLabels, Counter>,
    /// accept() failures (EMFILE and the like), each followed by a pause.
    pub accept_errors: Counter,
    /// The UDP workers' own counters, folded in on every scrape.
    pub workers: Mutex<Vec<Arc<WorkerCounters>>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("geodns");
        let queries = Family::<QueryLabels, Counter>::default();
        registry.register("queries", "DNS queries answered", queries.clone());
        let answers = Family::<RegionLabels, Counter>::default();
        registry.register("geo_answers", "Geo answers by region", answers.clone());
        let fail_open = Counter::default();
        registry.register(
            "geo_fail_open",
            "Geo answers with every endpoint because no region was healthy",
            fail_open.clone(),
        );
        let endpoint_up = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "endpoint_up",
            "1 if the endpoint passes its health check",
            endpoint_up.clone(),
        );
        let health_changes = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "health_changes",
            "Endpoint health state changes",
            health_changes.clone(),
        );
        let latency = Histogram::new(exponential_buckets(1e-6, 2.0, 16));
        registry.register(
            "query_seconds",
            "Time to build and send an answer on the general path (TCP, and UDP the fast path does not answer)",
            latency.clone(),
        );
        let fast_answers = Counter::default();
        registry.register(
            "udp_fast_answers",
            "UDP queries answered from prepared answers by the worker threads",
            fast_answers.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register("reloads", "Config and database reloads", reloads.clone());
        let rate_limited = Family::<ActionLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "UDP replies over their client prefix's rate: sent truncated (slipped) or dropped",
            rate_limited.clone(),
        );
        let tcp_connections = Gauge::default();
        registry.register(
            "tcp_connections",
            "Open TCP connections",
            tcp_connections.clone(),
        );
        let tcp_closed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "tcp_limit_closed",
            "TCP connections closed by a limit (per_client, idle, io, lifetime)",
            tcp_closed.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "tcp_accept_errors",
            "TCP accept failures (out of file descriptors and the like); each pauses accepting",
            accept_errors.clone(),
        );
        Self {
            registry,
            queries,
            answers,
            fail_open,
            endpoint_up,
            health_changes,
            latency,
            reloads,
            fast_answers,
            rate_limited,
            tcp_connections,
            tcp_closed,
            accept_errors,
            workers: Mutex::new(Vec::new()),
        }
    }

    /// The Prometheus text, with the workers' counts folded in first.
    pub fn render(&self) -> String {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for worker in workers.iter() {
            worker.fold(self);
        }
        drop(workers);
        service_base::metrics_text::render(&self.registry)
    }

    /// An endpoint's health is now `up` (or not); `changed` when it was
    /// known before (a first check only sets the gauge).
    pub fn health_known(&self, region: &str, endpoint: &str, up: bool, changed: bool) {
        let labels = EndpointLabels {
            region: region.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        self.endpoint_up.get_or_create(&labels).set(i64::from(up));
        let changes = self.health_changes.get_or_create(&labels);
        if changed {
            changes.inc();
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
