//! Cron for consumers: a `[[consumers]]` entry with `schedule = "5m"` gets
//! a tick in its own queue at every multiple of the interval (wall clock),
//! `{"at_ms": <the multiple>, "schedule": "<consumer>"}`. Every edge
//! running the consumer sends the tick, with the dedup id
//! `schedule-<consumer>-<n>`, so the queue enqueues it once per interval
//! across all of them (as long as their clocks agree within the queue's
//! dedup window), and it is handled like any message: leased by one
//! worker, retried on failure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use waypost_api::queues::NewMessage;

use super::origin_api::QueueApi;

/// The tick for interval number `slot` of `every`.
fn tick(consumer: &str, every: Duration, slot: u64) -> NewMessage {
    let at_ms = slot * every.as_millis() as u64;
    NewMessage {
        body: serde_json::json!({ "schedule": consumer, "at_ms": at_ms }).to_string(),
        delay_s: 0,
        dedup_id: Some(format!("schedule-{consumer}-{slot}")),
        ordering_key: None,
        blob: None,
    }
}

/// Sends a tick at every multiple of `every` until `stop`.
pub async fn run(api: QueueApi, consumer: String, every: Duration, stop: CancellationToken) {
    let every_ms = every.as_millis().max(1) as u64;
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let slot = now / every_ms + 1;
        let wait = Duration::from_millis(slot * every_ms - now);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = api.send(vec![tick(&consumer, every, slot)]).await {
            tracing::warn!(consumer, queue = %api.queue, error = %e, "could not send the scheduled tick; the next one comes at the next interval");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_edge_sends_the_same_tick_for_one_interval() {
        let a = tick("report", Duration::from_secs(60), 28_000_000);
        let b = tick("report", Duration::from_secs(60), 28_000_000);
        assert_eq!(a, b);
        assert_eq!(a.dedup_id.as_deref(), Some("schedule-report-28000000"));
        let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["at_ms"], 28_000_000u64 * 60_000);
    }
}
