//! The change feed as clients read it: the replicated [`Event`] (part of
//! the snapshot format, the origin's own) mapped to the wire contract's
//! [`waypost_api::feed::Event`]. The two are kept apart so a snapshot
//! format change never changes what edges read, and the reverse.

use waypost_api::feed;

use super::{Event, EventKind};

impl From<&Event> for feed::Event {
    fn from(event: &Event) -> Self {
        let kind = match event.kind.clone() {
            EventKind::AssetPut {
                path,
                sha256,
                surrogate_keys,
            } => feed::EventKind::AssetPut {
                path,
                sha256,
                surrogate_keys,
            },
            EventKind::AssetDeleted { path } => feed::EventKind::AssetDeleted { path },
            EventKind::KvPut { namespace, key } => feed::EventKind::KvPut { namespace, key },
            EventKind::KvDeleted { namespace, key } => {
                feed::EventKind::KvDeleted { namespace, key }
            }
            EventKind::Purge {
                paths,
                surrogate_keys,
                soft,
            } => feed::EventKind::Purge {
                paths,
                surrogate_keys,
                soft,
            },
            EventKind::PluginVersion { name, sha256, size } => {
                feed::EventKind::PluginVersion { name, sha256, size }
            }
            EventKind::PluginDeleted { name } => feed::EventKind::PluginDeleted { name },
        };
        feed::Event {
            seq: event.seq,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot's JSON of an event and the wire's are the same today;
    /// this guards the mapping, not the formats' equality.
    #[test]
    fn maps_every_field() {
        let event = Event {
            seq: 7,
            kind: EventKind::AssetPut {
                path: "a.txt".into(),
                sha256: "00".into(),
                surrogate_keys: vec!["k".into()],
            },
        };
        let wire = feed::Event::from(&event);
        assert_eq!(wire.seq, 7);
        assert_eq!(
            wire.kind,
            feed::EventKind::AssetPut {
                path: "a.txt".into(),
                sha256: "00".into(),
                surrogate_keys: vec!["k".into()],
            }
        );
    }
}
