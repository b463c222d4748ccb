//! The consumer's side of the origin's queue API: lease a batch (long
//! poll), then ack and retry by receipt.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;
use waypost_api::QueueName;
use waypost_api::queues::{
    AckRequest, LeaseRequest, Leased, MAX_WAIT_S, NackRequest, Receipt, Retry, queue_path,
};

use crate::plugin::capabilities::KvClient;

/// Largest lease answer: the origin caps one at 4 MiB of bodies.
const MAX_LEASE_ANSWER: usize = 16 * 1024 * 1024;

pub struct QueueApi {
    pub client: Arc<KvClient>,
    pub queue: QueueName,
}

impl QueueApi {
    async fn post(&self, rest: &str, body: &impl Serialize) -> Result<Bytes, String> {
        let path = queue_path(&self.queue, rest);
        let body = Bytes::from(serde_json::to_vec(body).expect("JSON serialises"));
        let (status, answer) = self
            .client
            .request(Method::POST, &path, body, MAX_LEASE_ANSWER)
            .await?;
        if status != StatusCode::OK {
            return Err(format!(
                "POST {path} answered {status}: {}",
                String::from_utf8_lossy(&answer).trim()
            ));
        }
        Ok(answer)
    }

    /// Up to `max` messages, waiting up to 20 s for the first.
    pub async fn lease(&self, max: usize, visibility: Duration) -> Result<Leased, String> {
        let request = LeaseRequest {
            max,
            wait_s: MAX_WAIT_S,
            visibility_timeout_s: Some(visibility.as_secs().max(1)),
        };
        let answer = self.post("lease", &request).await?;
        serde_json::from_slice(&answer).map_err(|e| format!("the lease answer is not one: {e}"))
    }

    pub async fn ack(&self, receipts: Vec<Receipt>) -> Result<(), String> {
        if receipts.is_empty() {
            return Ok(());
        }
        self.post("ack", &AckRequest { receipts }).await.map(drop)
    }

    pub async fn retry(&self, retries: Vec<Retry>) -> Result<(), String> {
        if retries.is_empty() {
            return Ok(());
        }
        self.post("nack", &NackRequest { retries }).await.map(drop)
    }
}
