//! The change feed as Server-Sent Events: a subscriber reads part of the
//! feed, disconnects, and resumes with `Last-Event-ID`, seeing every event
//! exactly once and in order.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Origin;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;

/// One parsed SSE message.
#[derive(Debug)]
struct Message {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// Reads SSE messages off a response body, skipping comment heartbeats.
struct Reader<S> {
    body: S,
    buffer: String,
}

impl<S: Stream<Item = reqwest::Result<Bytes>> + Unpin> Reader<S> {
    async fn next(&mut self) -> Message {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message {
                    id: None,
                    event: String::new(),
                    data: Value::Null,
                };
                for line in block.lines() {
                    match line.split_once(": ") {
                        Some(("id", v)) => message.id = Some(v.parse().unwrap()),
                        Some(("event", v)) => message.event = v.to_string(),
                        Some(("data", v)) => message.data = serde_json::from_str(v).unwrap(),
                        _ => {}
                    }
                }
                if !message.event.is_empty() {
                    return message;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an SSE message in time")
                .expect("stream still open")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn subscribe(
    o: &Origin,
    query: &str,
    last_event_id: Option<u64>,
) -> Reader<impl Stream<Item = reqwest::Result<Bytes>> + Unpin + use<>> {
    let mut req = o
        .get(&format!("/events?{query}"))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Reader {
        body: resp.bytes_stream(),
        buffer: String::new(),
    }
}

async fn put_kv(o: &Origin, key: &str) {
    let resp = o.put(&format!("/kv/ns/{key}"), "v").send().await.unwrap();
    assert!(resp.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_disconnect_and_resume_with_last_event_id() {
    let o = Origin::start().await;
    for key in ["a", "b", "c"] {
        put_kv(&o, key).await;
    }

    let mut first = subscribe(&o, "after=0", None).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let m = first.next().await;
        assert_eq!(m.event, "kv_put");
        assert_eq!(m.data["seq"].as_u64(), m.id);
        seen.push(m.id.unwrap());
    }
    drop(first);

    // Written while the subscriber is away, including a purge.
    put_kv(&o, "d").await;
    let resp = o
        .client
        .post(o.url("/purge"))
        .bearer_auth(common::TOKEN)
        .json(&serde_json::json!({ "paths": ["/x"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    // The reconnect repeats the original URL; Last-Event-ID wins.
    let mut resumed = subscribe(&o, "after=0", Some(*seen.last().unwrap())).await;
    for _ in 0..3 {
        let m = resumed.next().await;
        seen.push(m.id.unwrap());
        if m.id == Some(5) {
            assert_eq!(m.event, "purge");
            assert_eq!(m.data["paths"][0], "/x");
        }
    }
    // A live event arrives on the open stream.
    put_kv(&o, "e").await;
    let live = resumed.next().await;
    seen.push(live.id.unwrap());
    assert_eq!(live.data["key"], "e");
    drop(resumed);
    assert_eq!(
        seen,
        [1, 2, 3, 4, 5, 6],
        "every event exactly once, in order"
    );

    let resp = o
        .get("/events")
        .header("accept", "text/event-stream")
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Long-poll is unchanged for clients that do not ask for SSE.
    let page: Value = o
        .get("/events?after=5")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"][0]["seq"], 6);

    // An open stream does not hold up a graceful shutdown.
    let open = subscribe(&o, "after=6", None).await;
    tokio::time::timeout(Duration::from_secs(10), o.server.shutdown())
        .await
        .expect("shutdown waited on an SSE stream");
    drop(open);
}
