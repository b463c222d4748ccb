//! The follower's metrics: events applied by type, its position, failed
//! polls and resynchronisations (a lazy soft purge of the whole cache, or
//! of the plugins' KV read cache).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Default)]
pub struct FeedMetrics {
    events: Family<EventLabels, Counter>,
    pub position: Gauge,
    pub errors: Counter,
    pub resyncs: Counter,
    pub kv_resyncs: Counter,
}

impl crate::metrics::Registers for FeedMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "feed_events",
            "Change-feed events applied, by type",
            self.events.clone(),
        );
        registry.register(
            "feed_position",
            "Sequence number of the last change-feed event applied",
            self.position.clone(),
        );
        registry.register(
            "feed_errors",
            "Failed change-feed polls (purges and deploys arrive late while these grow)",
            self.errors.clone(),
        );
        registry.register(
            "feed_resyncs",
            "Times this edge missed feed events and soft-purged its whole cache",
            self.resyncs.clone(),
        );
        registry.register(
            "feed_kv_resyncs",
            "Times this edge missed KV events and dropped the plugins' cached KV reads",
            self.kv_resyncs.clone(),
        );
    }
}

impl FeedMetrics {
    pub fn count(&self, event: &'static str) {
        self.events.get_or_create(&EventLabels { event }).inc();
    }
}
