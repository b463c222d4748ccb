//! Prometheus text exposition of a per-server registry.
//!
//! Each server owns its own [`Registry`] rather than a process-global one, so
//! tests can run several servers in one process and read each one's figures.

use prometheus_client::registry::Registry;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders `registry` in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}
