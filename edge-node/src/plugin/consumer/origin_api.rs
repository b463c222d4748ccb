//! The consumer's side of the origin's queue API: lease a batch (long
//! poll), then ack and retry by receipt.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;
use waypost_api::QueueName;
use waypost_api::queues::{
    AckRequest, LeaseRequest, Leased, MAX_WAIT_S, NackRequest, NewMessage, Receipt, Retry,
    SendRequest, queue_path,
};

use crate::plugin::capabilities::KvClient;

/// Largest lease answer: the origin stops adding messages once it holds
/// 4 MiB of bodies, so at most that plus one largest body, each byte
/// escaped as up to six in JSON.
const MAX_LEASE_ANSWER: usize = 6 * (4 * 1024 * 1024 + waypost_api::queues::MAX_BODY);

/// Times a lease is asked for when its answer is lost.
const LEASE_ATTEMPTS: usize = 3;

/// Why a call did not succeed.
enum Failure {
    /// No answer, or a 5xx: the call may or may not have applied.
    Lost(String),
    /// A 4xx: it did not apply, and asking again will not change that.
    Refused(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Failure::Lost(m) | Failure::Refused(m) => m,
        }
    }
}

pub struct QueueApi {
    pub client: Arc<KvClient>,
    pub queue: QueueName,
}

impl QueueApi {
    async fn post(&self, rest: &str, body: &impl Serialize) -> Result<Bytes, Failure> {
        let path = queue_path(&self.queue, rest);
        let body = Bytes::from(serde_json::to_vec(body).expect("JSON serialises"));
        let (status, answer) = self
            .client
            .request(Method::POST, &path, body, MAX_LEASE_ANSWER)
            .await
            .map_err(Failure::Lost)?;
        if status != StatusCode::OK {
            let reason = format!(
                "POST {path} answered {status}: {}",
                String::from_utf8_lossy(&answer).trim()
            );
            return Err(if status.is_server_error() {
                Failure::Lost(reason)
            } else {
                Failure::Refused(reason)
            });
        }
        Ok(answer)
    }

    /// Up to `max` messages, waiting up to 20 s for the first. A lease
    /// whose answer is lost (the origin failed over mid-request) is asked
    /// again under its request id, which returns the same messages rather
    /// than leaving them hidden for the visibility timeout.
    pub async fn lease(&self, max: usize, visibility: Duration) -> Result<Leased, String> {
        let request = LeaseRequest {
            max,
            wait_s: MAX_WAIT_S,
            visibility_timeout_s: Some(visibility.as_secs().max(1)),
            request_id: Some(format!("edge-{:016x}", rand::random::<u64>())),
        };
        let mut last = String::new();
        for attempt in 0..LEASE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match self.post("lease", &request).await {
                Ok(answer) => {
                    return serde_json::from_slice(&answer)
                        .map_err(|e| format!("the lease answer is not one: {e}"));
                }
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Lost(e)) => last = e,
            }
        }
        Err(last)
    }

    pub async fn send(&self, messages: Vec<NewMessage>) -> Result<(), String> {
        self.post("messages", &SendRequest { messages })
            .await
            .map(drop)
            .map_err(Failure::into_message)
    }

    pub async fn ack(&self, receipts: Vec<Receipt>) -> Result<(), String> {
        if receipts.is_empty() {
            return Ok(());
        }
        self.post("ack", &AckRequest { receipts })
            .await
            .map(drop)
            .map_err(Failure::into_message)
    }

    pub async fn retry(&self, retries: Vec<Retry>) -> Result<(), String> {
        if retries.is_empty() {
            return Ok(());
        }
        self.post("nack", &NackRequest { retries })
            .await
            .map(drop)
            .map_err(Failure::into_message)
    }
}
