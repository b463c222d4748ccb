//! Active health checks: `GET <health_path>` on every origin of a pool each
//! `health_interval`; `rise`/`fall` consecutive results flip its state.
//! Checks use the pool's TLS settings, so an `https://` origin is checked
//! as its requests are, and a certificate the edge would refuse fails the
//! check (logged with rustls' reason). They bypass `max_connections` (one
//! connection per origin, kept idle between checks): an origin whose slots
//! are all busy is loaded, not down.

use std::sync::Arc;

use http::{Request, Uri};
use tokio_util::sync::CancellationToken;

use super::Pool;

impl Pool {
    /// Runs the checks until `stop` is cancelled.
    pub fn spawn_health_checks(self: &Arc<Self>, stop: CancellationToken) {
        let pool = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(pool.config.health_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let checks = pool.origins.iter().map(|o| pool.check(o));
                futures::future::join_all(checks).await;
            }
        });
    }

    async fn check(&self, origin: &super::pool::Origin) {
        let uri: Uri = format!(
            "{}://{}{}",
            origin.scheme(),
            origin.authority,
            self.config.health_path
        )
        .parse()
        .expect("authority and path were validated");
        let req = Request::get(uri)
            .header(http::header::USER_AGENT, "waypost-edge-health")
            .body(crate::body::empty())
            .expect("valid request");
        let ok = match tokio::time::timeout(
            self.config.health_timeout,
            self.health_client().request(req),
        )
        .await
        {
            Ok(Ok(resp)) => resp.status().is_success(),
            Ok(Err(e)) => {
                if let Some(f) = super::tls::tls_failure(&e) {
                    self.log_tls_failure(origin, super::pool::TlsCheck::Health, &f);
                }
                false
            }
            Err(_) => false,
        };
        self.note(origin, ok);
    }
}
