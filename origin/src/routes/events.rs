//! `GET /events?after=SEQ&wait=SECONDS`: the change feed, as long-poll,
//! or as Server-Sent Events when the client accepts `text/event-stream`
//! ([`super::sse`]).
//!
//! Returns the committed events with a sequence number above `after`, in
//! order, as `{"events": [...], "last_seq": N}`. With `wait`, an empty answer
//! is held until an event arrives or the wait ends. A client resumes after a
//! disconnect by passing the last `seq` it processed, so it sees every event
//! exactly once; one that fell further behind than the feed keeps gets 410.
//!
//! With `classes=content,kv` a reader follows only those event classes
//! ([`EventClass`]): the wait lasts until one of them has an event, and a
//! class whose events after `after` were trimmed is named in the page's
//! `missed` instead of failing the whole read with 410, so the reader
//! catches up on that class alone.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::{AppState, body, query, sse};
use crate::response::{self, ResBody};
use waypost_api::feed::{EventClass, FEED_VERSION, Page};

/// Longest long-poll wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most events per answer.
const MAX_EVENTS: usize = 1000;

/// GET /events.
pub async fn get(state: &Arc<AppState>, req: &Request<Incoming>) -> Response<ResBody> {
    if req.method() == Method::GET && wants_event_stream(req.headers()) {
        return event_stream(state, req);
    }
    let number = |name: &str| -> Result<u64, String> {
        query::param(req.uri(), name).map_or(Ok(0), |v| {
            v.parse()
                .map_err(|_| format!("`{name}` must be a whole number, got {v:?}"))
        })
    };
    let (after, wait, limit) = match (number("after"), number("wait"), number("limit")) {
        (Ok(a), Ok(w), Ok(l)) => (a, Duration::from_secs(w).min(MAX_WAIT), l),
        (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => {
            return response::text(StatusCode::BAD_REQUEST, m);
        }
    };
    let limit = match limit {
        0 => MAX_EVENTS,
        n => (n as usize).min(MAX_EVENTS),
    };
    let classes = match query::param(req.uri(), "classes") {
        None => None,
        Some(text) => match EventClass::parse_list(&text) {
            Ok(classes) => Some(classes),
            Err(m) => return response::text(StatusCode::BAD_REQUEST, m),
        },
    };
    let Some(classes) = classes else {
        return whole_feed(state, after, wait, limit).await;
    };
    let feed = &state.replica.state;
    let mut seq = feed.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    let mut feed_closed = false;
    loop {
        let (read, last_seq) = feed.read(|s| (s.read_feed(after, &classes, limit), s.last_seq));
        let waited_out = feed_closed || tokio::time::Instant::now() >= deadline;
        if !read.events.is_empty() || !read.missed.is_empty() || waited_out {
            let page = Page {
                version: FEED_VERSION,
                events: read.events.iter().map(Into::into).collect(),
                last_seq,
                missed: read.missed,
            };
            return body::json_response(StatusCode::OK, &page);
        }
        // Events of other classes wake the wait but end it only once one
        // of ours arrives.
        let newer = seq.wait_for(|last| *last > last_seq);
        feed_closed = matches!(tokio::time::timeout_at(deadline, newer).await, Ok(Err(_)));
    }
}

/// The feed without `classes`: every event, and 410 once any was trimmed.
async fn whole_feed(
    state: &Arc<AppState>,
    after: u64,
    wait: Duration,
    limit: usize,
) -> Response<ResBody> {
    let mut seq = state.replica.state.subscribe();
    let _ = tokio::time::timeout(wait, seq.wait_for(|last| *last > after)).await;
    let page = state.replica.state.read(|s| {
        s.events_after(after, limit).map(|events| Page {
            version: FEED_VERSION,
            events: events.iter().map(Into::into).collect(),
            last_seq: s.last_seq,
            missed: Vec::new(),
        })
    });
    match page {
        Some(page) => body::json_response(StatusCode::OK, &page),
        None => response::text(
            StatusCode::GONE,
            format!(
                "events after {after} are no longer kept; resynchronise from a full listing, \
                 then follow the feed from /events?after=<current last_seq>"
            ),
        ),
    }
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// The SSE form: resumes after `Last-Event-ID` if given, else `after`.
fn event_stream(state: &Arc<AppState>, req: &Request<Incoming>) -> Response<ResBody> {
    let resume = match req.headers().get("last-event-id") {
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(seq) => Some(seq),
            None => {
                return response::text(
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID must be the sequence number of the last event received",
                );
            }
        },
        None => None,
    };
    let after = match resume {
        Some(seq) => seq,
        None => match query::param(req.uri(), "after").map(|v| v.parse::<u64>()) {
            None => 0,
            Some(Ok(after)) => after,
            Some(Err(_)) => {
                return response::text(StatusCode::BAD_REQUEST, "`after` must be a whole number");
            }
        },
    };
    let events = sse::stream(
        state.replica.state.clone(),
        after,
        state.replica.state.subscribe(),
        sse::HEARTBEAT,
        state.stopping.clone(),
    );
    let body =
        StreamBody::new(events.map(|frame| frame.map(Frame::data).map_err(|never| match never {})));
    let mut response = Response::new(body.boxed_unsync());
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
