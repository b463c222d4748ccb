//! `waypost_edge_tls_certificate_expiry_seconds{certificate}`: how long
//! each served certificate has left, computed at scrape time from the
//! certificates in use, so an alert sees a renewal (or a failed one) as
//! soon as the reloader swaps it in.

use std::sync::Weak;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::sni::SniResolver;

/// Without TLS (the default), the family is exported with no samples, so
/// rules and dashboards that use it stay valid on every edge.
#[derive(Debug, Default)]
pub struct ExpiryCollector {
    resolver: Weak<SniResolver>,
}

impl ExpiryCollector {
    pub(super) fn new(resolver: Weak<SniResolver>) -> Self {
        Self { resolver }
    }
}

impl Collector for ExpiryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "tls_certificate_expiry_seconds",
            "Seconds until each served certificate (tls.certificates[].cert) expires; negative once it has",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let Some(resolver) = self.resolver.upgrade() else {
            return Ok(());
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let certs = resolver.snapshot();
        for cert in certs.certs() {
            let labels = [("certificate", cert.file.as_str())];
            ConstGauge::new(cert.not_after - now).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl crate::metrics::Registers for ExpiryCollector {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(Self {
            resolver: self.resolver.clone(),
        }));
    }
}
