//! The origin's Prometheus figures, in a registry owned by each server so
//! several servers in one test process keep separate counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The method as a label: standard methods by name, anything else as
/// `OTHER`, so clients cannot grow the label set at will.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Labels of one finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    /// The route template (`assets`, `healthz`, …), never the raw path, so
    /// the label set stays bounded.
    pub route: &'static str,
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: &'static str,
}

/// Handles to every metric; cheap to clone (all `Arc` inside).
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// Time until the response head is ready; streaming the body is not
    /// included, so large downloads do not drown out handler latency.
    pub latency: Family<RouteLabels, Histogram>,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub assets: Gauge,
    /// Time from proposing a write to a majority holding it (as seen by the
    /// origin the client wrote to, forwarding included).
    pub commit_latency: Histogram,
    pub leader_changes: Gauge,
    pub replication_lag: Family<PeerLabels, Gauge>,
    pub blob_peer_fetches: Family<FetchLabels, Counter>,
    pub blob_pushes: Family<PushLabels, Counter>,
    pub blob_corrupt: Family<CorruptLabels, Counter>,
    pub connections_open: Family<ListenerLabels, Gauge>,
    pub connections_rejected: Family<ListenerLabels, Counter>,
    pub connection_limits: Family<LimitLabels, Counter>,
    /// TLS handshakes that failed (bad or missing client certificate,
    /// plaintext on a TLS port, timeouts).
    pub tls_handshake_failures: Family<ListenerLabels, Counter>,
    /// Seconds until this region's peer certificate expires (set at each
    /// scrape; absent without peer TLS).
    pub peer_cert_expiry: Gauge,
    pub public_cert_expiry: Gauge,
    pub queue_messages: Family<QueueStateLabels, Gauge>,
    pub queue_oldest_age: Family<QueueLabels, Gauge>,
    /// Events the change feed keeps, and their weight in bytes, per class.
    pub feed_events_kept: Family<FeedClassLabels, Gauge>,
    pub feed_bytes_kept: Family<FeedClassLabels, Gauge>,
    /// Blobs and abandoned uploads deleted by collection ([`crate::blob_gc`]).
    pub blob_gc_deleted: Counter,
    pub blob_gc_freed_bytes: Counter,
    pub blob_gc_runs: Family<GcLabels, Counter>,
}

/// How a collection pass ended (`ok`, `skipped`, `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct GcLabels {
    pub result: &'static str,
}

/// A change-feed event class (`content` or `kv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FeedClassLabels {
    pub class: &'static str,
}

/// A queue, by name (declared by operators, so the set is theirs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

/// A queue and a state of its messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QueueStateLabels {
    pub queue: String,
    /// `ready`, `in_flight`, `delayed` or `dead` (the dead letters).
    pub state: &'static str,
}

/// Which listener (`public` or `peer`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
}

/// A listener and the limit a connection ran into.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LimitLabels {
    pub listener: &'static str,
    pub kind: &'static str,
}

/// A Raft peer, by member id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: u64,
}

/// Outcome of fetching a missing blob from a peer region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FetchLabels {
    /// `ok`, `corrupt` or `failed`.
    pub result: &'static str,
}

/// Outcome of handing a peer region a copy of an uploaded blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PushLabels {
    /// `sent`, `present` (the peer already had it, nothing sent) or
    /// `failed`.
    pub result: &'static str,
}

/// How a local blob was found to be damaged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CorruptLabels {
    /// `size` (stored length differs from the metadata, seen before
    /// sending) or `hash` (bytes did not hash to the address, seen at the
    /// end of a full download).
    pub kind: &'static str,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("origin");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head",
            latency.clone(),
        );
        let bytes_received = Counter::default();
        registry.register(
            "http_received_bytes",
            "Request body bytes read",
            bytes_received.clone(),
        );
        let bytes_sent = Counter::default();
        registry.register(
            "http_sent_bytes",
            "Response body bytes written",
            bytes_sent.clone(),
        );
        let assets = Gauge::default();
        registry.register(
            "assets",
            "Assets with metadata in this region",
            assets.clone(),
        );
        let commit_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "raft_commit_duration_seconds",
            "Time until a write is held by a majority of regions",
            commit_latency.clone(),
        );
        let leader_changes = Gauge::default();
        registry.register(
            "raft_leader_changes",
            "Leader changes this origin has seen since it started",
            leader_changes.clone(),
        );
        let replication_lag = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "raft_replication_lag_entries",
            "On the leader: log entries each peer is behind",
            replication_lag.clone(),
        );
        let blob_peer_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "blob_peer_fetches",
            "Blobs fetched from another region on first read",
            blob_peer_fetches.clone(),
        );
        let blob_pushes = Family::<PushLabels, Counter>::default();
        registry.register(
            "blob_pushes",
            "Uploaded blobs handed to another region before the upload is acknowledged",
            blob_pushes.clone(),
        );
        let blob_corrupt = Family::<CorruptLabels, Counter>::default();
        registry.register(
            "blob_corrupt",
            "Local blob copies found damaged, deleted and refetched from a peer",
            blob_corrupt.clone(),
        );
        let connections_open = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Open connections per listener",
            connections_open.clone(),
        );
        let connections_rejected = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_rejected",
            "Connections refused at max_connections",
            connections_rejected.clone(),
        );
        let connection_limits = Family::<LimitLabels, Counter>::default();
        registry.register(
            "connection_limits",
            "Connections closed by a limit (header_timeout, header_too_large, idle_timeout)",
            connection_limits.clone(),
        );
        let queue_messages = Family::<QueueStateLabels, Gauge>::default();
        registry.register(
            "queue_messages",
            "Messages held per queue and state (ready, in_flight, delayed, dead)",
            queue_messages.clone(),
        );
        let queue_oldest_age = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_oldest_message_age_seconds",
            "Age of the oldest message held per queue",
            queue_oldest_age.clone(),
        );
        let feed_events_kept = Family::<FeedClassLabels, Gauge>::default();
        registry.register(
            "feed_events_kept",
            "Change-feed events kept per class (an edge further behind revalidates; feed.keep_events)",
            feed_events_kept.clone(),
        );
        let feed_bytes_kept = Family::<FeedClassLabels, Gauge>::default();
        registry.register(
            "feed_bytes_kept",
            "Weight of the change-feed events kept per class, in bytes (feed.keep_bytes)",
            feed_bytes_kept.clone(),
        );
        let blob_gc_deleted = Counter::default();
        registry.register(
            "blob_gc_deleted",
            "Blobs no asset or plugin points at, and abandoned uploads, deleted from this region's store",
            blob_gc_deleted.clone(),
        );
        let blob_gc_freed_bytes = Counter::default();
        registry.register(
            "blob_gc_freed_bytes",
            "Bytes of blobs deleted by collection",
            blob_gc_freed_bytes.clone(),
        );
        let blob_gc_runs = Family::<GcLabels, Counter>::default();
        registry.register(
            "blob_gc_runs",
            "Blob collection passes by result (skipped: this region was not current)",
            blob_gc_runs.clone(),
        );
        let tls_handshake_failures = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes refused or abandoned per listener",
            tls_handshake_failures.clone(),
        );
        let peer_cert_expiry = Gauge::default();
        registry.register(
            "peer_certificate_expiry_seconds",
            "Seconds until this region's peer certificate (peer.cert_file) expires",
            peer_cert_expiry.clone(),
        );
        let public_cert_expiry = Gauge::default();
        registry.register(
            "tls_certificate_expiry_seconds",
            "Seconds until the public listener's certificate (tls.cert_file) expires; 0 without [tls]",
            public_cert_expiry.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            bytes_received,
            bytes_sent,
            assets,
            commit_latency,
            leader_changes,
            replication_lag,
            blob_peer_fetches,
            blob_pushes,
            blob_corrupt,
            connections_open,
            connections_rejected,
            connection_limits,
            queue_messages,
            queue_oldest_age,
            feed_events_kept,
            feed_bytes_kept,
            blob_gc_deleted,
            blob_gc_freed_bytes,
            blob_gc_runs,
            tls_handshake_failures,
            peer_cert_expiry,
            public_cert_expiry,
        }
    }

    /// Prometheus text of every metric.
    pub fn render(&self) -> String {
        service_base::metrics_text::render(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_names() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                method: method_label(&http::Method::GET),
                route: "assets",
                status: 200,
            })
            .inc();
        let text = m.render();
        assert!(
            text.contains(
                "origin_http_requests_total{method=\"GET\",route=\"assets\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("origin_assets 0"), "{text}");
        assert_eq!(
            method_label(&http::Method::from_bytes(b"BREW").unwrap()),
            "OTHER"
        );
    }
}
