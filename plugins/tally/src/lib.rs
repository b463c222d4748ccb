//! A queue consumer: for each message, adds one to the KV counter of every
//! word in its body (namespace `tally`), and asks the queue to send itself
//! a `done <id>` note on queue `tally-done` when granted.
//!
//! For the consumer tests, a body starting with `retry` is retried (after
//! one second), one starting with `trap` panics, which traps the instance,
//! and one starting with `spin` loops until the edge's deadline stops it:
//! either way the whole batch is delivered again.

use waypost_sdk::kv::Store;
use waypost_sdk::queue::{self, Consumer, Delivery, Message, Outcome};

struct Tally;

impl Consumer for Tally {
    fn handle(_queue: String, deliveries: Vec<Delivery>) -> Vec<Outcome> {
        let counts = Store::open("tally");
        deliveries
            .iter()
            .map(|d| {
                if d.body.starts_with("trap") {
                    panic!("message {} asked to trap", d.id);
                }
                if d.body.starts_with("spin") {
                    loop {
                        std::hint::spin_loop();
                    }
                }
                if d.body.starts_with("retry") {
                    return Outcome::Retry(Some(1));
                }
                for word in d.body.split_whitespace() {
                    let current = counts
                        .get(word)
                        .ok()
                        .flatten()
                        .and_then(|v| String::from_utf8(v).ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                    if counts
                        .put(word, (current + 1).to_string().as_bytes())
                        .is_err()
                    {
                        return Outcome::Retry(None);
                    }
                }
                // Best effort: only when the edge grants the queue.
                let _ = queue::send("tally-done", Message::new(format!("done {}", d.id)));
                Outcome::Ack
            })
            .collect()
    }
}

waypost_sdk::export_consumer!(Tally);
