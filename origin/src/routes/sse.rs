//! The change feed as Server-Sent Events: `GET /events?after=SEQ` with
//! `Accept: text/event-stream`.
//!
//! Each event is one SSE message, `id: <seq>`, `event: <type>`,
//! `data: <the event's JSON, as long-poll returns it>`. A client resumes
//! with `Last-Event-ID` (which wins over `after`, since a reconnecting
//! `EventSource` repeats the original URL), so it sees every event exactly
//! once and in order. A comment line every [`HEARTBEAT`] keeps proxies from
//! timing out an idle stream and lets the client notice a dead connection.
//!
//! A client further behind than the feed keeps gets one `event: error`
//! message with `{"error":"gone",...}` and the stream ends — the streaming
//! form of long-poll's 410 (the status line is already sent by then, and
//! the same rule applies if the feed is trimmed past a slow reader).
//! Streams also end when the server shuts down, so they never hold up a
//! graceful drain.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::raft::Event;

/// How often an idle stream gets a comment line.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Events read from the state per batch.
const BATCH: usize = 256;

/// Reads the events after a sequence number (at most `limit`); `None` when
/// they are no longer kept.
pub trait Feed: Send + 'static {
    fn events_after(&self, after: u64, limit: usize) -> Option<Vec<Event>>;
}

impl Feed for crate::raft::StateMachine {
    fn events_after(&self, after: u64, limit: usize) -> Option<Vec<Event>> {
        self.read(|s| s.events_after(after, limit))
    }
}

/// The SSE body: every event after `after`, then new ones as `last_seq`
/// announces them, until the client goes, falls behind, or `stop` fires.
pub fn stream<F: Feed>(
    feed: F,
    after: u64,
    last_seq: watch::Receiver<u64>,
    heartbeat: Duration,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let cursor = Cursor {
        feed,
        after,
        pending: VecDeque::new(),
        last_seq,
        ticks,
        stop,
        ended: false,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        let frame = c.next_frame().await?;
        Some((Ok(frame), c))
    })
}

struct Cursor<F> {
    feed: F,
    /// The newest sequence number sent.
    after: u64,
    pending: VecDeque<Event>,
    last_seq: watch::Receiver<u64>,
    ticks: Interval,
    stop: CancellationToken,
    ended: bool,
}

impl<F: Feed> Cursor<F> {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.after = event.seq;
                return Some(event_frame(&event));
            }
            match self.feed.events_after(self.after, BATCH) {
                None => {
                    self.ended = true;
                    return Some(gone_frame(self.after));
                }
                Some(events) if !events.is_empty() => {
                    self.pending.extend(events);
                    continue;
                }
                Some(_) => {}
            }
            let after = self.after;
            tokio::select! {
                changed = self.last_seq.wait_for(|last| *last > after) => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.ticks.tick() => return Some(Bytes::from_static(b": heartbeat\n\n")),
                _ = self.stop.cancelled() => return None,
            }
        }
    }
}

/// One event as an SSE message; the JSON is a single line, so it fits one
/// `data:` field.
fn event_frame(event: &Event) -> Bytes {
    let json =
        serde_json::to_value(waypost_api::feed::Event::from(event)).expect("events serialise");
    let kind = json["type"].as_str().unwrap_or("event").to_string();
    Bytes::from(format!(
        "id: {}\nevent: {kind}\ndata: {json}\n\n",
        event.seq
    ))
}

fn gone_frame(after: u64) -> Bytes {
    let data = serde_json::json!({
        "error": "gone",
        "after": after,
        "message": format!(
            "events after {after} are no longer kept; resynchronise from a full listing, \
             then follow the feed from the current last_seq"
        ),
    });
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::StreamExt;

    use super::*;
    use crate::raft::{Command, State};

    #[derive(Clone)]
    struct Shared(Arc<Mutex<State>>);

    impl Feed for Shared {
        fn events_after(&self, after: u64, limit: usize) -> Option<Vec<Event>> {
            self.0.lock().unwrap().events_after(after, limit)
        }
    }

    fn put(state: &Shared, seq: &watch::Sender<u64>, key: &str) {
        let mut s = state.0.lock().unwrap();
        s.apply(Command::KvPut {
            namespace: "n".into(),
            key: key.into(),
            value: "v".into(),
            precondition: None,
        });
        seq.send_replace(s.last_seq);
    }

    async fn next(s: &mut (impl Stream<Item = Result<Bytes, Infallible>> + Unpin)) -> String {
        let frame = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("a frame in time")
            .expect("stream still open")
            .unwrap();
        String::from_utf8(frame.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn sends_backlog_then_live_events_and_heartbeats() {
        let state = Shared(Arc::new(Mutex::new(State::default())));
        let (seq, rx) = watch::channel(0);
        put(&state, &seq, "a");
        let stop = CancellationToken::new();
        let heartbeat = Duration::from_millis(50);
        let mut s = Box::pin(stream(state.clone(), 0, rx, heartbeat, stop.clone()));
        let first = next(&mut s).await;
        assert!(
            first.starts_with("id: 1\nevent: kv_put\ndata: {"),
            "{first}"
        );
        assert!(first.ends_with("}\n\n"), "{first}");
        assert_eq!(next(&mut s).await, ": heartbeat\n\n");
        put(&state, &seq, "b");
        let mut live = next(&mut s).await;
        while live.starts_with(':') {
            live = next(&mut s).await;
        }
        assert!(live.starts_with("id: 2\n"), "{live}");
        stop.cancel();
        assert!(s.next().await.is_none(), "stream outlived shutdown");
    }

    #[tokio::test]
    async fn a_client_behind_the_kept_events_gets_an_error_event_and_the_end() {
        let mut kept = State::default();
        let retention = crate::raft::FeedRetention {
            events: 50,
            bytes: u64::MAX,
        };
        kept.set_feed_retention(retention);
        let state = Shared(Arc::new(Mutex::new(kept)));
        let (seq, rx) = watch::channel(0);
        for i in 0..retention.events + 2 {
            put(&state, &seq, &i.to_string());
        }
        let stop = CancellationToken::new();
        let mut s = Box::pin(stream(state, 0, rx, HEARTBEAT, stop));
        let frame = next(&mut s).await;
        assert!(frame.starts_with("event: error\ndata: {"), "{frame}");
        assert!(frame.contains("\"error\":\"gone\""), "{frame}");
        assert!(s.next().await.is_none());
    }
}
