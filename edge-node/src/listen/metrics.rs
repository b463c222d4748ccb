//! Listener metrics: what the front door admitted, shed and cut off.
//!
//! Counted separately from request metrics because most of these events
//! never become a request (a flood, a silent client, a failed handshake).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::limits::LimitKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    kind: &'static str,
}

/// Connection-level counters shared by every connection of a listener.
///
/// Cheap to update from any task (atomics inside); clone-free sharing via
/// `Arc`. One instance may serve several listeners: they are then counted
/// together.
#[derive(Debug)]
pub struct ListenerMetrics {
    accepted: Counter,
    open: Gauge,
    rejected: Counter,
    limit_hits: Family<LimitLabels, Counter>,
}

impl Default for ListenerMetrics {
    fn default() -> Self {
        let metrics = Self {
            accepted: Counter::default(),
            open: Gauge::default(),
            rejected: Counter::default(),
            limit_hits: Family::default(),
        };
        // Pre-create every label value so dashboards see zeros, not gaps.
        for kind in LimitKind::ALL {
            drop(metrics.limit_hits.get_or_create(&labels(kind)));
        }
        metrics
    }
}

fn labels(kind: LimitKind) -> LimitLabels {
    LimitLabels {
        kind: kind.as_str(),
    }
}

impl crate::metrics::Registers for ListenerMetrics {
    /// Registers the metrics under `listener_*` names; use a prefixed
    /// sub-registry to namespace them.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "listener_connections_accepted",
            "TCP connections accepted and served",
            self.accepted.clone(),
        );
        registry.register(
            "listener_connections_open",
            "Connections currently open",
            self.open.clone(),
        );
        registry.register(
            "listener_connections_rejected",
            "Connections refused because max_connections was reached",
            self.rejected.clone(),
        );
        registry.register(
            "listener_limit_hits",
            "Connections cut off by a listener limit, by kind",
            self.limit_hits.clone(),
        );
    }
}

impl ListenerMetrics {
    /// Connections accepted and handed to the HTTP stack so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.get()
    }

    /// Connections currently open.
    pub fn open(&self) -> i64 {
        self.open.get()
    }

    /// Connections refused because `max_connections` was reached.
    pub fn rejected(&self) -> u64 {
        self.rejected.get()
    }

    /// How often the given limit was hit.
    pub fn limit_hits(&self, kind: LimitKind) -> u64 {
        self.limit_hits.get_or_create(&labels(kind)).get()
    }

    pub(crate) fn record_rejected(&self) {
        self.rejected.inc();
    }

    pub(crate) fn record_limit(&self, kind: LimitKind) {
        self.limit_hits.get_or_create(&labels(kind)).inc();
    }

    /// Counts an accepted connection as open until the guard is dropped, so
    /// the gauge stays right even if the connection task panics.
    pub(crate) fn open_connection(&self) -> OpenGuard<'_> {
        self.accepted.inc();
        self.open.inc();
        OpenGuard { metrics: self }
    }
}

/// Decrements the open-connections gauge on drop.
pub(crate) struct OpenGuard<'a> {
    metrics: &'a ListenerMetrics,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.metrics.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Registers;

    #[test]
    fn registers_and_counts() {
        let metrics = ListenerMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        {
            let _guard = metrics.open_connection();
            assert_eq!(metrics.open(), 1);
        }
        metrics.record_limit(LimitKind::HeaderTimeout);
        metrics.record_rejected();
        assert_eq!(metrics.open(), 0);
        assert_eq!(metrics.accepted(), 1);
        assert_eq!(metrics.rejected(), 1);
        assert_eq!(metrics.limit_hits(LimitKind::HeaderTimeout), 1);

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("listener_limit_hits_total{kind=\"header_timeout\"} 1"));
        assert!(text.contains("listener_limit_hits_total{kind=\"idle_timeout\"} 0"));
        assert!(text.contains("listener_connections_open 0"));
    }
}
