//! Coalescing of concurrent misses: the first request for a key becomes the
//! leader and fetches from the origin; the others wait for its result and
//! then read the same (possibly still arriving) body, so N concurrent misses
//! cost one origin fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::meta::CachedObject;

/// What a leader's fetch produced, as seen by its followers.
#[derive(Clone)]
pub enum Outcome {
    /// Stored (or refreshed): followers use it if it matches their request.
    Stored(Arc<CachedObject>),
    /// Not stored (uncacheable, failed): followers fetch on their own.
    NotStored,
}

type Slot = watch::Receiver<Option<Outcome>>;

#[derive(Default)]
pub struct Coalescer {
    inflight: Mutex<HashMap<String, Slot>>,
}

/// Either lead the fetch for a key or follow another request's.
pub enum Role {
    Leader(LeaderGuard),
    Follower(Slot),
}

impl Coalescer {
    pub fn join(self: &Arc<Self>, key: &str) -> Role {
        let mut map = self.inflight.lock().expect("coalescer lock");
        if let Some(rx) = map.get(key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_string(), rx);
        Role::Leader(LeaderGuard {
            owner: self.clone(),
            key: key.to_string(),
            tx: Some(tx),
        })
    }

    /// Like [`join`](Self::join) but never waits: `None` when a fetch for the
    /// key is already running (background refreshes use this).
    pub fn try_lead(self: &Arc<Self>, key: &str) -> Option<LeaderGuard> {
        match self.join(key) {
            Role::Leader(g) => Some(g),
            Role::Follower(_) => None,
        }
    }
}

/// Held by the leader; publishing (or dropping, e.g. on error or a client
/// gone away) releases the followers.
pub struct LeaderGuard {
    owner: Arc<Coalescer>,
    key: String,
    tx: Option<watch::Sender<Option<Outcome>>>,
}

impl LeaderGuard {
    pub fn publish(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    fn release(&mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            self.owner
                .inflight
                .lock()
                .expect("coalescer lock")
                .remove(&self.key);
            tx.send_replace(Some(outcome));
        }
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        self.release(Outcome::NotStored);
    }
}

/// Waits for the leader of `slot`.
pub async fn wait(mut slot: Slot) -> Outcome {
    loop {
        if let Some(o) = slot.borrow_and_update().clone() {
            return o;
        }
        if slot.changed().await.is_err() {
            return Outcome::NotStored;
        }
    }
}
