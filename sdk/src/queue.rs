//! Durable queues at the origin: send work for background consumers, and
//! write consumers.
//!
//! A plugin may send only to the queues its `[[plugins]]` entry lists in
//! `queues`; a send returns once a majority of regions holds the message.
//! Delivery is at least once: a consumer may see a message again (after a
//! retry, a trap, or a lease that ended), so make its work idempotent.
//!
//! ```no_run
//! use waypost_sdk::queue::{self, Message};
//!
//! # fn f() -> Result<(), waypost_sdk::queue::Error> {
//! let id = queue::send("thumbnails", Message::new(r#"{"path":"photos/cat.jpg"}"#))?;
//! let later = Message::new("reminder").delay(std::time::Duration::from_secs(3600));
//! queue::send("emails", later.dedup_id("user-7-reminder"))?;
//! # let _ = id; Ok(()) }
//! ```
//!
//! A consumer is a library crate (`crate-type = ["cdylib"]`) that
//! implements [`Consumer`] and calls [`export_consumer!`](crate::export_consumer);
//! an edge's `[[consumers]]` entry names its component and its queue:
//!
//! ```ignore
//! use waypost_sdk::queue::{Consumer, Delivery, Outcome};
//!
//! struct Worker;
//!
//! impl Consumer for Worker {
//!     fn handle(_queue: String, deliveries: Vec<Delivery>) -> Vec<Outcome> {
//!         deliveries.iter().map(|d| if d.body.is_empty() { Outcome::Retry(Some(60)) } else { Outcome::Ack }).collect()
//!     }
//! }
//!
//! waypost_sdk::export_consumer!(Worker);
//! ```

use std::fmt;
use std::time::Duration;

use crate::bindings::waypost::edge::queue as wit;

pub use crate::bindings::exports::waypost::edge::consumer::{Delivery, Guest as Consumer, Outcome};

/// A failed send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The origin could not be reached or failed, or the queue is full;
    /// retrying later may help.
    Unavailable(String),
    /// The queue or message is not acceptable, the queue does not exist,
    /// or the plugin is not granted it.
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(m) => write!(f, "queue unavailable: {m}"),
            Error::Invalid(m) => write!(f, "queue invalid: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::Error> for Error {
    fn from(err: wit::Error) -> Self {
        match err {
            wit::Error::Unavailable(m) => Error::Unavailable(m),
            wit::Error::Invalid(m) => Error::Invalid(m),
        }
    }
}

/// A message to send, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    body: String,
    delay: Duration,
    dedup_id: Option<String>,
    ordering_key: Option<String>,
}

impl Message {
    /// A message with `body` (UTF-8 text, at most 16 MiB; the origin keeps large ones as blobs).
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            delay: Duration::ZERO,
            dedup_id: None,
            ordering_key: None,
        }
    }

    /// A message whose body is `value` as JSON.
    #[cfg(feature = "json")]
    pub fn json(value: &impl serde::Serialize) -> Result<Self, Error> {
        serde_json::to_string(value)
            .map(Self::new)
            .map_err(|e| Error::Invalid(format!("the message is not JSON: {e}")))
    }

    /// Delivered no earlier than `delay` from now (whole seconds).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// A repeat of `id` within the queue's dedup window is not enqueued.
    pub fn dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup_id = Some(id.into());
        self
    }

    /// Messages with one key are delivered in order, one at a time.
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    fn into_wit(self) -> wit::Message {
        let plain = self.delay.is_zero() && self.dedup_id.is_none() && self.ordering_key.is_none();
        wit::Message {
            body: self.body,
            options: (!plain).then_some(wit::Options {
                delay_seconds: self.delay.as_secs(),
                dedup_id: self.dedup_id,
                ordering_key: self.ordering_key,
            }),
        }
    }
}

/// Sends `message` to `queue`; its id once a majority of regions holds it.
pub fn send(queue: &str, message: Message) -> Result<u64, Error> {
    Ok(wit::send(queue, &message.into_wit())?)
}

/// Sends up to 1,000 messages as one replicated write; their ids in order.
pub fn send_batch(queue: &str, messages: Vec<Message>) -> Result<Vec<u64>, Error> {
    let messages: Vec<wit::Message> = messages.into_iter().map(Message::into_wit).collect();
    Ok(wit::send_batch(queue, &messages)?)
}

/// Exports a [`Consumer`] implementation as this component's
/// `waypost:edge/consumer`. Off wasm (a consumer's host unit tests) it
/// only checks the implementation, since the export names are wasm's.
#[macro_export]
macro_rules! export_consumer {
    ($consumer:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_queue_consumer!($consumer);
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(
            ::std::string::String,
            ::std::vec::Vec<$crate::queue::Delivery>,
        ) -> ::std::vec::Vec<$crate::queue::Outcome> =
            <$consumer as $crate::queue::Consumer>::handle;
    };
}
