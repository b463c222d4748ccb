//! The change feed's memory: the newest events of each [`EventClass`], in
//! a window of its own bounded by count and by bytes ([`Retention`]).
//!
//! Separate windows are the point: plugins can write KV thousands of times
//! a second, and with one shared window an edge that was away for seconds
//! found its position gone and had to revalidate its whole cache, though
//! no deploy or purge had happened. Now KV churn only ever trims KV events,
//! whose loss costs an edge its KV read cache, not its HTTP cache.
//!
//! What is kept is not part of any decision a command makes, so replicas
//! with different retention settings still agree on every outcome; they
//! only differ in how far back a reader can resume.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use waypost_api::feed::EventClass;

use super::state::{Event, EventKind};

/// Most bytes of JSON one page of events holds (at least one event): a
/// purge can name 10,000 paths, so a page of 1,000 events is not bounded
/// by its count.
pub const EVENT_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// How much of each class the feed keeps (`[feed]` in the origin's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most events kept per class.
    pub events: usize,
    /// Most bytes kept per class, counted as each event's JSON plus a fixed
    /// per-event overhead, which is roughly what it takes in memory.
    pub bytes: u64,
}

impl Retention {
    /// 100,000 events or 32 MiB per class: at 1,000 KV writes a second an
    /// edge can be away 100 s before it drops its KV read cache; a deploy
    /// of 1,000 assets takes ~200 KiB of the content window, so hundreds of
    /// deploys pass before an edge away through all of them revalidates.
    pub const DEFAULT: Retention = Retention {
        events: 100_000,
        bytes: 32 << 20,
    };
}

impl Default for Retention {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Weight of one event beyond its JSON: the `VecDeque` slot, the enum and
/// the strings' headers.
const EVENT_OVERHEAD: u64 = 96;

/// What a read of the feed found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRead {
    /// The events above the position, oldest first.
    pub events: Vec<Event>,
    /// The classes asked for whose events above the position were trimmed.
    pub missed: Vec<EventClass>,
}

/// The kept events, one window per class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredLog")]
pub struct EventLog {
    content: Window,
    kv: Window,
    #[serde(skip)]
    retention: Retention,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    events: VecDeque<Event>,
    /// The highest sequence number trimmed from this window: a reader
    /// whose position is below it missed something.
    trimmed_through: u64,
    /// The weight of `events` ([`weight`]); derived when loaded.
    #[serde(skip)]
    bytes: u64,
}

#[derive(Deserialize)]
struct StoredLog {
    content: Window,
    kv: Window,
}

impl From<StoredLog> for EventLog {
    fn from(s: StoredLog) -> Self {
        let mut log = Self {
            content: s.content,
            kv: s.kv,
            retention: Retention::DEFAULT,
        };
        log.content.reweigh();
        log.kv.reweigh();
        log
    }
}

fn weight(event: &Event) -> u64 {
    crate::json_size::json_len(event) as u64 + EVENT_OVERHEAD
}

impl Window {
    fn reweigh(&mut self) {
        self.bytes = self.events.iter().map(weight).sum();
    }

    fn push(&mut self, event: Event, retention: Retention) {
        self.bytes += weight(&event);
        self.events.push_back(event);
        self.trim(retention);
    }

    /// Drops the oldest events until the window fits; the newest always
    /// stays, so a reader at the previous position can still follow.
    fn trim(&mut self, retention: Retention) {
        while self.events.len() > 1
            && (self.events.len() > retention.events || self.bytes > retention.bytes)
        {
            let old = self.events.pop_front().expect("more than one event");
            self.bytes -= weight(&old);
            self.trimmed_through = old.seq;
        }
    }

    /// The events above `after`, from the first one past it.
    fn above(&self, after: u64) -> impl Iterator<Item = &Event> {
        let start = self.events.partition_point(|e| e.seq <= after);
        self.events.range(start..)
    }
}

impl EventLog {
    /// The log of a snapshot written before events had classes: one mixed
    /// window, split by class. What it trimmed is not known, so each class
    /// counts as trimmed up to the oldest event kept.
    pub fn from_single_window(events: VecDeque<Event>) -> Self {
        let trimmed = events.front().map_or(0, |e| e.seq.saturating_sub(1));
        let mut log = Self::default();
        for event in events {
            log.window_mut(class_of(&event.kind))
                .events
                .push_back(event);
        }
        for window in [&mut log.content, &mut log.kv] {
            window.trimmed_through = trimmed;
            window.reweigh();
        }
        log
    }

    /// Applies `retention` from now on, trimming what it no longer allows.
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
        self.content.trim(retention);
        self.kv.trim(retention);
    }

    pub fn push(&mut self, event: Event) {
        let retention = self.retention;
        self.window_mut(class_of(&event.kind))
            .push(event, retention);
    }

    fn window(&self, class: EventClass) -> &Window {
        match class {
            EventClass::Content => &self.content,
            EventClass::Kv => &self.kv,
        }
    }

    fn window_mut(&mut self, class: EventClass) -> &mut Window {
        match class {
            EventClass::Content => &mut self.content,
            EventClass::Kv => &mut self.kv,
        }
    }

    /// The events of `classes` above `after`, oldest first: at most `limit`
    /// and [`EVENT_PAGE_BYTES`] of JSON (at least one). A class whose
    /// events above `after` were trimmed is in [`FeedRead::missed`]; what
    /// it still keeps is in the page.
    pub fn read(&self, after: u64, classes: &[EventClass], limit: usize) -> FeedRead {
        let missed = classes
            .iter()
            .copied()
            .filter(|&c| after < self.window(c).trimmed_through)
            .collect();
        let mut streams: Vec<_> = classes
            .iter()
            .map(|&c| self.window(c).above(after).peekable())
            .collect();
        let mut events = Vec::new();
        let mut bytes = 0;
        while events.len() < limit {
            // The next event in sequence order across the classes' windows.
            let Some(next) = streams
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| s.peek().map(|e| (e.seq, i)))
                .min()
                .map(|(_, i)| i)
            else {
                break;
            };
            let event = streams[next].next().expect("peeked");
            bytes += crate::json_size::json_len(event) + 1;
            if !events.is_empty() && bytes > EVENT_PAGE_BYTES {
                break;
            }
            events.push(event.clone());
        }
        FeedRead { events, missed }
    }

    /// Events kept and their weight, per class (for `/metrics`).
    pub fn usage(&self, class: EventClass) -> (usize, u64) {
        let w = self.window(class);
        (w.events.len(), w.bytes)
    }
}

fn class_of(kind: &EventKind) -> EventClass {
    match kind {
        EventKind::KvPut { .. } | EventKind::KvDeleted { .. } => EventClass::Kv,
        EventKind::AssetPut { .. }
        | EventKind::AssetDeleted { .. }
        | EventKind::Purge { .. }
        | EventKind::PluginVersion { .. }
        | EventKind::PluginDeleted { .. } => EventClass::Content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(seq: u64) -> Event {
        Event {
            seq,
            kind: EventKind::KvPut {
                namespace: "n".into(),
                key: seq.to_string(),
            },
        }
    }

    fn asset(seq: u64) -> Event {
        Event {
            seq,
            kind: EventKind::AssetDeleted {
                path: format!("a{seq}"),
            },
        }
    }

    fn seqs(read: &FeedRead) -> Vec<u64> {
        read.events.iter().map(|e| e.seq).collect()
    }

    const BOTH: [EventClass; 2] = EventClass::ALL;

    #[test]
    fn kv_churn_does_not_trim_content_events() {
        let mut log = EventLog::default();
        log.set_retention(Retention {
            events: 10,
            bytes: u64::MAX,
        });
        log.push(asset(1));
        for seq in 2..=100 {
            log.push(kv(seq));
        }
        let content = log.read(0, &[EventClass::Content], 1000);
        assert_eq!(seqs(&content), [1]);
        assert!(content.missed.is_empty(), "{:?}", content.missed);
        let both = log.read(0, &BOTH, 1000);
        assert_eq!(both.missed, [EventClass::Kv]);
        assert_eq!(
            both.events.len(),
            11,
            "the asset event and the kept KV ones"
        );
        assert_eq!(seqs(&log.read(95, &BOTH, 1000)), [96, 97, 98, 99, 100]);
        assert!(log.read(95, &BOTH, 1000).missed.is_empty());
    }

    #[test]
    fn pages_merge_classes_in_sequence_order() {
        let mut log = EventLog::default();
        for seq in 1..=6 {
            log.push(if seq % 2 == 0 { kv(seq) } else { asset(seq) });
        }
        assert_eq!(seqs(&log.read(0, &BOTH, 1000)), [1, 2, 3, 4, 5, 6]);
        assert_eq!(seqs(&log.read(2, &BOTH, 3)), [3, 4, 5]);
        assert_eq!(seqs(&log.read(0, &[EventClass::Kv], 1000)), [2, 4, 6]);
    }

    #[test]
    fn windows_are_bounded_in_bytes() {
        let mut log = EventLog::default();
        let one = weight(&kv(1000));
        log.set_retention(Retention {
            events: usize::MAX,
            bytes: one * 5,
        });
        for seq in 1000..2000 {
            log.push(kv(seq));
        }
        let (count, bytes) = log.usage(EventClass::Kv);
        assert!((4..=5).contains(&count), "{count}");
        assert!(bytes <= one * 5, "{bytes}");
        assert_eq!(log.read(1994, &BOTH, 1000).missed, []);
        assert_eq!(log.read(1000, &BOTH, 1000).missed, [EventClass::Kv]);
    }

    #[test]
    fn an_old_single_window_is_split_by_class() {
        let events: VecDeque<Event> = [asset(5), kv(6), asset(7)].into();
        let log = EventLog::from_single_window(events);
        assert_eq!(seqs(&log.read(4, &[EventClass::Content], 10)), [5, 7]);
        assert!(log.read(4, &BOTH, 10).missed.is_empty());
        assert_eq!(log.read(3, &BOTH, 10).missed, BOTH);
    }

    #[test]
    fn the_log_round_trips_through_a_snapshot_with_its_weights() {
        let mut log = EventLog::default();
        log.push(asset(1));
        log.push(kv(2));
        let json = serde_json::to_string(&log).unwrap();
        let back: EventLog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, log);
        assert_eq!(back.usage(EventClass::Kv), log.usage(EventClass::Kv));
    }
}
