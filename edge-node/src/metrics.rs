//! The edge's Prometheus metrics: requests by status and cache result,
//! origin latency and health, bytes sent, cache size, purges, plus the
//! listeners' connection and limit counters and the change-feed follower's.

use std::time::Duration;

use http::uri::Authority;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How the cache handled a request (the `cache` label).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum CacheResult {
    Hit,
    Miss,
    /// Served stale (stale-while-revalidate or stale-if-error).
    Stale,
    /// Revalidated with the origin, body served from cache.
    Revalidated,
    /// Not cacheable by method or request: forwarded.
    Pass,
    /// Answered by the edge itself (errors, 416, 304 to a client).
    Synth,
    /// Answered by a plugin chain.
    Plugin,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status: u16,
    cache: CacheResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: CacheResult,
}

impl CacheResult {
    const ALL: [CacheResult; 7] = [
        CacheResult::Hit,
        CacheResult::Miss,
        CacheResult::Stale,
        CacheResult::Revalidated,
        CacheResult::Pass,
        CacheResult::Synth,
        CacheResult::Plugin,
    ];
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    pool: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginUpLabels {
    pool: String,
    origin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    /// The version's content hash (12 hex digits), so a bad deploy shows
    /// apart from the version it replaced.
    version: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurgeLabels {
    kind: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// One histogram per cache result, taken out of the family once so the
    /// hot path observes without a map lookup (clones share their data).
    request_latency: [Histogram; CacheResult::ALL.len()],
    origin_latency: Family<OriginLabels, Histogram, fn() -> Histogram>,
    origin_up: Family<OriginUpLabels, Gauge>,
    bytes_sent: Counter,
    cache_memory_bytes: Gauge,
    cache_disk_bytes: Gauge,
    cache_objects: Gauge,
    cache_disk_fill_reserved: Gauge,
    purges: Family<PurgeLabels, Counter>,
    plugin_seconds: Family<PluginLabels, Histogram, fn() -> Histogram>,
}

/// A subsystem's own metrics (the listeners', the feed follower's), added
/// to the edge's registry at start. Subsystems depend on this module, never
/// the reverse, so it stays a leaf of the import graph.
pub trait Registers {
    fn register(&self, registry: &mut Registry);
}

impl Metrics {
    /// The request-path metrics plus each of `subsystems`'.
    pub fn new(subsystems: &[&dyn Registers]) -> Self {
        let mut registry = Registry::with_prefix("waypost_edge");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Client requests by response status and cache result",
            requests.clone(),
        );
        let request_family =
            Family::<CacheLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "request_seconds",
            "Time from a client request to its response head, by cache result",
            request_family.clone(),
        );
        let request_latency = CacheResult::ALL
            .map(|cache| request_family.get_or_create(&CacheLabels { cache }).clone());
        let origin_latency =
            Family::<OriginLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "origin_response_seconds",
            "Time to origin response headers, by pool and outcome",
            origin_latency.clone(),
        );
        let origin_up = Family::<OriginUpLabels, Gauge>::default();
        registry.register(
            "origin_up",
            "1 when an origin is considered healthy",
            origin_up.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "body_bytes_sent",
            "Response body bytes sent to clients",
            bytes_sent.clone(),
        );
        let cache_memory_bytes = Gauge::default();
        registry.register(
            "cache_memory_bytes",
            "Bytes used by the memory tier",
            cache_memory_bytes.clone(),
        );
        let cache_disk_bytes = Gauge::default();
        registry.register(
            "cache_disk_bytes",
            "Bytes used by the disk tier",
            cache_disk_bytes.clone(),
        );
        let cache_objects = Gauge::default();
        registry.register(
            "cache_objects",
            "Objects indexed by the cache",
            cache_objects.clone(),
        );
        let cache_disk_fill_reserved = Gauge::default();
        registry.register(
            "cache_disk_fill_reserved_bytes",
            "Disk bytes reserved by fills in progress (at most an eighth of disk.capacity)",
            cache_disk_fill_reserved.clone(),
        );
        let purges = Family::<PurgeLabels, Counter>::default();
        registry.register("purges", "Purge requests by kind", purges.clone());
        let plugin_seconds =
            Family::<PluginLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "plugin_request_seconds",
            "Time in a plugin until its response head, by plugin, version and outcome (ok, trap, timeout, overloaded)",
            plugin_seconds.clone(),
        );
        for subsystem in subsystems {
            subsystem.register(&mut registry);
        }
        Self {
            registry,
            requests,
            request_latency,
            origin_latency,
            origin_up,
            bytes_sent,
            cache_memory_bytes,
            cache_disk_bytes,
            cache_objects,
            cache_disk_fill_reserved,
            purges,
            plugin_seconds,
        }
    }

    /// Counts a request and how long its response head took.
    pub fn count_request(&self, status: u16, cache: CacheResult, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { status, cache })
            .inc();
        self.request_latency[cache as usize].observe(elapsed.as_secs_f64());
    }

    pub fn add_bytes_sent(&self, n: u64) {
        self.bytes_sent.inc_by(n);
    }

    pub fn observe_origin(&self, pool: &str, elapsed: Duration, outcome: &'static str) {
        self.origin_latency
            .get_or_create(&OriginLabels {
                pool: pool.to_string(),
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn set_origin_up(&self, pool: &str, origin: &Authority, up: bool) {
        self.origin_up
            .get_or_create(&OriginUpLabels {
                pool: pool.to_string(),
                origin: origin.to_string(),
            })
            .set(i64::from(up));
    }

    pub fn observe_plugin(
        &self,
        plugin: &str,
        version: &str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        self.plugin_seconds
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
                version: version.to_string(),
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn count_purge(&self, kind: &'static str) {
        self.purges.get_or_create(&PurgeLabels { kind }).inc();
    }

    /// Renders the registry after refreshing the cache-size gauges.
    pub fn render(&self, usage: &crate::cache::Usage) -> String {
        self.cache_memory_bytes.set(usage.memory_bytes as i64);
        self.cache_disk_bytes.set(usage.disk_bytes as i64);
        self.cache_objects.set(usage.objects as i64);
        self.cache_disk_fill_reserved
            .set(usage.disk_fill_reserved as i64);
        service_base::metrics_text::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_latency_is_kept_per_cache_result() {
        for (i, cache) in CacheResult::ALL.into_iter().enumerate() {
            assert_eq!(cache as usize, i, "{cache:?} indexes its histogram");
        }
        let m = Metrics::new(&[]);
        m.count_request(200, CacheResult::Hit, Duration::from_micros(300));
        m.count_request(200, CacheResult::Miss, Duration::from_millis(40));
        let text = m.render(&crate::cache::Usage::default());
        // The first bucket holding the one observation of each result.
        let first_bucket = |cache: &str| {
            text.lines()
                .filter(|l| l.starts_with("waypost_edge_request_seconds_bucket{"))
                .filter(|l| l.contains(&format!("cache=\"{cache}\"")) && l.ends_with(" 1"))
                .find_map(|l| l.split("le=\"").nth(1)?.split('"').next())
                .map(str::to_string)
        };
        assert_eq!(first_bucket("Hit").as_deref(), Some("0.0005"), "{text}");
        assert_eq!(first_bucket("Miss").as_deref(), Some("0.064"), "{text}");
    }
}
