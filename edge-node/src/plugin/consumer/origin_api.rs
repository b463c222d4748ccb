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
use crate::plugin::capabilities::OriginCallError;

/// Largest lease answer: the origin stops adding messages once it holds
/// 4 MiB of bodies, so at most that plus one largest body, each byte
/// escaped as up to six in JSON.
const MAX_LEASE_ANSWER: usize = 6 * (4 * 1024 * 1024 + waypost_api::queues::MAX_BODY);

/// Times a lease is asked for when its answer is lost.
const LEASE_ATTEMPTS: usize = 3;

/// Why a call to the queue API did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum QueueCallError {
    /// No answer: the call may or may not have applied.
    #[error(transparent)]
    Lost(#[from] OriginCallError),
    /// A 5xx: the call may or may not have applied.
    #[error("{method} {path} answered {status}: {body}")]
    Failed {
        method: &'static str,
        path: String,
        status: StatusCode,
        body: String,
    },
    /// A 4xx: it did not apply, and asking again will not change that.
    #[error("{method} {path} was refused with {status}: {body}")]
    Refused {
        method: &'static str,
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error("the lease answer is not one: {0}")]
    BadAnswer(#[from] serde_json::Error),
}

pub struct QueueApi {
    pub client: Arc<KvClient>,
    pub queue: QueueName,
}

impl QueueApi {
    async fn post(&self, rest: &str, body: &impl Serialize) -> Result<Bytes, QueueCallError> {
        let path = queue_path(&self.queue, rest);
        let body = Bytes::from(serde_json::to_vec(body).expect("JSON serialises"));
        let (status, answer) = self
            .client
            .request(Method::POST, &path, body, MAX_LEASE_ANSWER)
            .await?;
        if status != StatusCode::OK {
            let body = String::from_utf8_lossy(&answer).trim().to_string();
            let method = "POST";
            return Err(if status.is_server_error() {
                QueueCallError::Failed {
                    method,
                    path,
                    status,
                    body,
                }
            } else {
                QueueCallError::Refused {
                    method,
                    path,
                    status,
                    body,
                }
            });
        }
        Ok(answer)
    }

    /// Up to `max` messages, waiting up to 20 s for the first. A lease
    /// whose answer is lost (the origin failed over mid-request) is asked
    /// again under its request id, which returns the same messages rather
    /// than leaving them hidden for the visibility timeout.
    pub async fn lease(&self, max: usize, visibility: Duration) -> Result<Leased, QueueCallError> {
        let request = LeaseRequest {
            max,
            wait_s: MAX_WAIT_S,
            visibility_timeout_s: Some(visibility.as_secs().max(1)),
            request_id: Some(format!("edge-{:016x}", rand::random::<u64>())),
        };
        let mut attempt = 1;
        loop {
            match self.post("lease", &request).await {
                Ok(answer) => return Ok(serde_json::from_slice(&answer)?),
                Err(e @ (QueueCallError::Refused { .. } | QueueCallError::BadAnswer(_))) => {
                    return Err(e);
                }
                Err(e) if attempt == LEASE_ATTEMPTS => return Err(e),
                Err(_) => {}
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn send(&self, messages: Vec<NewMessage>) -> Result<(), QueueCallError> {
        self.post("messages", &SendRequest { messages })
            .await
            .map(drop)
    }

    pub async fn ack(&self, receipts: Vec<Receipt>) -> Result<(), QueueCallError> {
        if receipts.is_empty() {
            return Ok(());
        }
        self.post("ack", &AckRequest { receipts }).await.map(drop)
    }

    pub async fn retry(&self, retries: Vec<Retry>) -> Result<(), QueueCallError> {
        if retries.is_empty() {
            return Ok(());
        }
        self.post("nack", &NackRequest { retries }).await.map(drop)
    }
}
