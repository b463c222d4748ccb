//! `waypost:edge/queue`: sending messages to the origin's durable queues
//! (`POST /queues/{name}/messages`), through the same origin client as KV.
//! A send returns once a majority of regions holds the messages.

use bytes::Bytes;
use http::{Method, StatusCode};
use waypost_api::QueueName;
use waypost_api::queues::{MAX_BATCH, NewMessage, SendRequest, SendResponse, queue_path};

use super::EdgeCtx;
use super::waypost::edge::queue::{Error, Host, Message};

/// Largest answer to a send (ids of up to 1,000 messages).
const MAX_ANSWER: usize = 256 * 1024;

fn to_wire(m: Message) -> NewMessage {
    let options = m.options.unwrap_or(super::waypost::edge::queue::Options {
        delay_seconds: 0,
        dedup_id: None,
        ordering_key: None,
    });
    NewMessage {
        body: m.body,
        delay_s: options.delay_seconds,
        dedup_id: options.dedup_id,
        ordering_key: options.ordering_key,
        blob: None,
    }
}

async fn send(ctx: &EdgeCtx, queue: &str, messages: Vec<Message>) -> Result<Vec<u64>, Error> {
    let name = QueueName::parse(queue).map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(reason) = ctx.grants.refuse_queue(&ctx.plugin, queue) {
        tracing::warn!(plugin = %ctx.plugin, version = %ctx.version, queue, "{reason}");
        return Err(Error::Invalid(reason));
    }
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(Error::Invalid(format!(
            "a send holds 1 to {MAX_BATCH} messages, got {}",
            messages.len()
        )));
    }
    let request = SendRequest {
        messages: messages.into_iter().map(to_wire).collect(),
    };
    request.check().map_err(|e| Error::Invalid(e.to_string()))?;
    let api = ctx.kv.clone().ok_or_else(|| {
        Error::Unavailable(
            "queues are not configured on this edge (set plugin_runtime.kv_pool)".into(),
        )
    })?;
    let body = Bytes::from(serde_json::to_vec(&request).expect("JSON serialises"));
    let path = queue_path(&name, "messages");
    let (status, answer) = api
        .request(Method::POST, &path, body, MAX_ANSWER)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    let reason = || String::from_utf8_lossy(&answer).trim().to_string();
    match status {
        StatusCode::OK => {
            let sent: SendResponse = serde_json::from_slice(&answer).map_err(|e| {
                Error::Unavailable(format!("the origin's answer to a send is not one: {e}"))
            })?;
            Ok(sent.messages.into_iter().map(|m| m.id).collect())
        }
        s if s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS => Err(Error::Invalid(
            format!("origin queue answered {status}: {}", reason()),
        )),
        _ => Err(Error::Unavailable(format!(
            "origin queue answered {status}: {}",
            reason()
        ))),
    }
}

impl Host for EdgeCtx {
    async fn send(&mut self, queue: String, message: Message) -> Result<u64, Error> {
        let ids = send(self, &queue, vec![message]).await?;
        ids.first()
            .copied()
            .ok_or_else(|| Error::Unavailable("the origin answered a send with no id".into()))
    }

    async fn send_batch(
        &mut self,
        queue: String,
        messages: Vec<Message>,
    ) -> Result<Vec<u64>, Error> {
        send(self, &queue, messages).await
    }
}
