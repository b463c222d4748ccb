//! `GET /events?after=SEQ&wait=SECONDS`: the change feed, as long-poll.
//!
//! Returns the committed events with a sequence number above `after`, in
//! order, as `{"events": [...], "last_seq": N}`. With `wait`, an empty answer
//! is held until an event arrives or the wait ends. A client resumes after a
//! disconnect by passing the last `seq` it processed, so it sees every event
//! exactly once; one that fell further behind than the feed keeps gets 410.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use super::{AppState, body, query};
use crate::raft::Event;
use crate::response::{self, ResBody};

/// Longest long-poll wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most events per answer.
const MAX_EVENTS: usize = 1000;

#[derive(Serialize)]
struct Page {
    events: Vec<Event>,
    /// The newest event this origin has applied.
    last_seq: u64,
}

/// GET /events.
pub async fn get(state: &Arc<AppState>, req: &Request<Incoming>) -> Response<ResBody> {
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
    let mut seq = state.replica.state.subscribe();
    let _ = tokio::time::timeout(wait, seq.wait_for(|last| *last > after)).await;
    let page = state.replica.state.read(|s| {
        s.events_after(after, limit).map(|events| Page {
            events,
            last_seq: s.last_seq,
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
