//! [`NatsEngine`]: fan-out across hosts through a NATS server
//! (`[cluster]`). It wraps this host's [`MemoryEngine`]: local delivery
//! is exactly as without a cluster, and each publish also goes to NATS on
//! its rooms' subjects, where the hosts with matching subscribers receive
//! it and hand it to their own memory engine.
//!
//! # Interest, order, duplicates
//!
//! - A host subscribes on NATS only to the subjects of the rooms its own
//!   clients subscribed to (counted: the last one to leave unsubscribes),
//!   so it receives only what it delivers. A room's wildcard values are
//!   NATS `*` tokens; publishes *to* a room with `"*"` go on the key set's
//!   subject, which every host subscribed on that key set also listens
//!   to (see `subject`).
//! - One connection per host, and one task that publishes in the order
//!   the engine was called: NATS keeps a connection's order per
//!   subscriber, so each publisher's messages to a room arrive in order.
//! - A host gets one copy of a message per subject of its own that
//!   matches (a wildcard room's and a concrete room's both match a
//!   concrete publish; a publish to several rooms is sent on each room's
//!   subject). It keeps the first copy (by origin and sequence) and
//!   delivers it once to every matching subscription, as a local publish
//!   does.
//! - The connection does not echo a host's publications back to it, and
//!   each carries its origin, so none is delivered twice locally.
//!
//! While the link is down (and again when it is back) the room history is
//! forgotten: this host missed other hosts' publications, so a client
//! that comes back with a position is told `complete:false` rather than
//! given a partial recovery.
//!
//! Publishers never wait on NATS: a full send queue (NATS down for long)
//! drops the message for other hosts, counted and logged; local delivery
//! is unaffected.
//!
//! # Layout
//! - this file: the engine, its interest counts and the wire format
//! - `link`: the connection: options, reconnect backoff, the publish
//!   and interest tasks
//! - `subject`: rooms as NATS subjects (escaping, wildcards)

mod link;
mod subject;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    config::ClusterConfig,
    rooms::{IndexError, Room},
    util::sync::lock,
};

use super::{
    engine::{Delivery, FanoutEngine, Subscription},
    history::{HistoryPage, SnapshotError},
    memory::MemoryEngine,
};

pub use link::{ClusterError, connect_options};
use link::{Control, Link, Status};
use subject::{room_subject, wild_subject};

/// Publications remembered (by origin and sequence) to drop a second copy.
const SEEN: usize = 4096;

/// A publication on the wire.
#[derive(Serialize)]
struct WireOut<'a> {
    /// The publishing host's name.
    o: &'a str,
    /// Its sequence number on that host.
    n: u64,
    /// The rooms as published.
    r: Vec<serde_json::Value>,
    d: &'a RawValue,
}

#[derive(Deserialize)]
struct WireIn {
    o: String,
    n: u64,
    r: Vec<serde_json::Value>,
    d: Box<RawValue>,
}

/// The part the receiving tasks share with the engine.
pub(crate) struct Shared {
    local: MemoryEngine,
    origin: Arc<str>,
    seen: Mutex<Seen>,
    status: Status,
}

#[derive(Default)]
struct Seen {
    set: HashSet<(String, u64)>,
    order: VecDeque<(String, u64)>,
}

impl Seen {
    /// True the first time `key` is offered.
    fn first(&mut self, key: (String, u64)) -> bool {
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > SEEN
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

impl Shared {
    /// A publication from another host: delivered to this host's matching
    /// subscriptions, never sent on.
    fn receive(&self, payload: &[u8]) {
        let wire: WireIn = match serde_json::from_slice(payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("cluster: dropped a message that is not a publication ({e})");
                return;
            }
        };
        if *wire.o == *self.origin {
            return;
        }
        if !lock(&self.seen).first((wire.o, wire.n)) {
            return;
        }
        let rooms: Result<Vec<Room>, _> = wire.r.iter().map(Room::parse).collect();
        match rooms {
            Ok(rooms) => {
                self.local.publish(&rooms, &wire.d);
            }
            Err(e) => tracing::warn!("cluster: dropped a publication with an invalid room ({e})"),
        }
    }
}

/// Subjects this host listens on, counted, and which subscription holds
/// which.
#[derive(Default)]
struct Interest {
    subjects: HashMap<String, usize>,
    held: HashMap<u64, HashMap<Arc<str>, Vec<String>>>,
}

/// Fan-out across hosts; see the module docs.
pub struct NatsEngine {
    shared: Arc<Shared>,
    prefix: String,
    seq: AtomicU64,
    interest: Mutex<Interest>,
    link: Link,
}

impl NatsEngine {
    /// Connects to `[cluster]`'s server (in the background: a server that
    /// is down now is retried, and local traffic is served meanwhile).
    pub async fn connect(
        config: &ClusterConfig,
        local: MemoryEngine,
    ) -> Result<Self, ClusterError> {
        let status = Status::default();
        let shared = Arc::new(Shared {
            local,
            origin: config.name.as_str().into(),
            seen: Mutex::default(),
            status: status.clone(),
        });
        let link = Link::start(config, shared.clone(), status).await?;
        Ok(Self {
            shared,
            prefix: config.subject_prefix.clone(),
            seq: AtomicU64::new(0),
            interest: Mutex::default(),
            link,
        })
    }

    /// Counts one more subscription on `room`'s subjects, listening on
    /// those that are new.
    fn hold(&self, session: u64, request_id: Arc<str>, room: &Room) {
        let mut subjects = Vec::with_capacity(2);
        if let Some(s) = room_subject(&self.prefix, room, true) {
            subjects.push(s);
        }
        if !room.is_empty() {
            subjects.push(wild_subject(&self.prefix, room));
        }
        let mut interest = lock(&self.interest);
        for s in &subjects {
            let n = interest.subjects.entry(s.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                self.link.control(Control::Listen(s.clone()));
            }
        }
        interest
            .held
            .entry(session)
            .or_default()
            .insert(request_id, subjects);
    }

    /// Releases the subjects of the given subscriptions of `session`
    /// (all of them when `ids` is `None`).
    fn release(&self, session: u64, ids: Option<&[Arc<str>]>) {
        let mut interest = lock(&self.interest);
        let Interest { subjects, held } = &mut *interest;
        let Some(of_session) = held.get_mut(&session) else {
            return;
        };
        let released: Vec<Vec<String>> = match ids {
            Some(ids) => ids.iter().filter_map(|id| of_session.remove(id)).collect(),
            None => of_session.drain().map(|(_, s)| s).collect(),
        };
        if of_session.is_empty() {
            held.remove(&session);
        }
        for s in released.into_iter().flatten() {
            if let Some(n) = subjects.get_mut(&s) {
                *n -= 1;
                if *n == 0 {
                    subjects.remove(&s);
                    self.link.control(Control::Forget(s));
                }
            }
        }
    }

    /// Sends a publication to the other hosts, once per distinct subject.
    fn send(&self, rooms: &[Room], data: &RawValue) {
        let mut subjects: Vec<String> = rooms
            .iter()
            .map(|r| {
                room_subject(&self.prefix, r, false)
                    .unwrap_or_else(|| wild_subject(&self.prefix, r))
            })
            .collect();
        subjects.sort_unstable();
        subjects.dedup();
        let wire = WireOut {
            o: &self.shared.origin,
            n: self.seq.fetch_add(1, Ordering::Relaxed),
            r: rooms.iter().map(Room::to_json).collect(),
            d: data,
        };
        let payload = match serde_json::to_vec(&wire) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::warn!("cluster: a publication could not be encoded ({e})");
                return;
            }
        };
        for s in subjects {
            self.link.publish(s, payload.clone());
        }
    }
}

impl FanoutEngine for NatsEngine {
    fn subscribe(&self, sub: Subscription) -> Result<(), IndexError> {
        let (session, id, room) = (sub.session, sub.request_id.clone(), sub.room.clone());
        self.shared.local.subscribe(sub)?;
        self.hold(session, id, &room);
        Ok(())
    }

    fn unsubscribe(&self, session: u64, request_id: &str) -> bool {
        let removed = self.shared.local.unsubscribe(session, request_id);
        if removed {
            self.release(session, Some(&[Arc::from(request_id)]));
        }
        removed
    }

    fn remove_session(&self, session: u64) -> usize {
        let n = self.shared.local.remove_session(session);
        self.release(session, None);
        n
    }

    fn retain_session(&self, session: u64, keep: &dyn Fn(&Room) -> bool) -> Vec<Arc<str>> {
        let removed = self.shared.local.retain_session(session, keep);
        self.release(session, Some(&removed));
        removed
    }

    fn session_subscriptions(&self, session: u64) -> usize {
        self.shared.local.session_subscriptions(session)
    }

    /// Delivers here as the memory engine does, then sends it on.
    fn publish(&self, rooms: &[Room], data: &RawValue) -> Delivery {
        let delivery = self.shared.local.publish(rooms, data);
        self.send(rooms, data);
        delivery
    }

    fn num_rooms(&self) -> usize {
        self.shared.local.num_rooms()
    }

    fn num_subscriptions(&self) -> usize {
        self.shared.local.num_subscriptions()
    }

    fn rooms(&self) -> Vec<(serde_json::Value, usize)> {
        self.shared.local.rooms()
    }

    fn history(&self, room: &Room, limit: usize) -> Option<HistoryPage> {
        self.shared.local.history(room, limit)
    }

    fn history_bytes(&self) -> usize {
        self.shared.local.history_bytes()
    }

    fn save_history(&self, path: &std::path::Path) -> Result<bool, SnapshotError> {
        self.shared.local.save_history(path)
    }

    fn cluster(&self) -> Option<serde_json::Value> {
        Some(self.shared.status.report(&self.shared.origin))
    }
}

#[cfg(test)]
mod tests;
