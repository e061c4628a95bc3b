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
//!   so it receives only what it delivers (rooms with history excepted:
//!   see below). A room's wildcard values are
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
//! # Room history: JetStream
//!
//! With `[[history.rooms]]`, a publication that reaches a history room is
//! not delivered at once nor sent on core NATS: it is published once to a
//! JetStream stream (`jetstream`), and every host, the publisher's too,
//! reads the whole stream in order and delivers each publication when it
//! arrives, numbered by its stream sequence. So every host gives it the
//! same offset, and a client may bring its position to any host. The
//! stream, not a per-host copy, is what is kept: bounded by the largest
//! `size` per subject, the longest `age_secs` and `[history] max_bytes`
//! (oldest first); each host's `mirror` holds what it read, within each
//! entry's own bounds, and says when a recovery is complete.
//!
//! Why a stream and not a KV bucket: history is an ordered log per room
//! with bounds by count, age and bytes, which is what a stream is; a KV
//! bucket keeps one value per key. Why every host reads all of it rather
//! than the rooms its clients hold: a client may arrive at any host with
//! a position in any history room, and a host that starts reading a room
//! only then could not tell a late publication from a missed one.
//!
//! No loss, no duplicate: the mirror applies each sequence once (a
//! redelivery, after a reader restart, is skipped) under the history lock,
//! so the hand-over from recovered to live publications is the memory
//! engine's (see `memory`). Each host delivers a history publication only
//! from the stream, never also from the publish, so it cannot arrive
//! twice. A lost acknowledgement is logged and counted, not retried.
//!
//! While the link is down (or the stream is not being read, as when NATS
//! has just come back) a publication to a history room is delivered on
//! its host alone, without an offset; the mirror then, and whenever
//! the link drops or returns, takes every position up to the last
//! sequence read as possibly incomplete: this host missed other hosts'
//! publications, or they missed this one, so a client that comes back
//! with such a position is told `complete:false` rather than given a
//! partial recovery.
//!
//! Publishers never wait on NATS: a full send queue (NATS down for long)
//! drops the message for other hosts, counted and logged; local delivery
//! is unaffected.
//!
//! # Layout
//! - this file: the engine, its interest counts and the wire format
//! - `jetstream`: the history stream: its bounds, its publisher and the
//!   reader that feeds the mirror
//! - `link`: the connection: options, reconnect backoff, the publish
//!   and interest tasks
//! - `mirror`: [`History`] for a cluster: the stream as this host read
//!   it, numbered by the stream's sequence
//! - `subject`: rooms as NATS subjects (escaping, wildcards)

mod jetstream;
mod link;
mod mirror;
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
    config::{ClusterConfig, HistoryConfig},
    rooms::{IndexError, Room},
    util::sync::lock,
};

use super::{
    engine::{Delivery, FanoutEngine, Subscription},
    history::{History, HistoryPage, SnapshotError},
    memory::MemoryEngine,
};

use jetstream::HistoryStream;
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

    /// A publication read from the history stream, numbered `seq`: this
    /// host's own too, since it was not delivered when published.
    fn receive_numbered(&self, payload: &[u8], seq: u64) {
        let wire: WireIn = match serde_json::from_slice(payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(
                    seq,
                    "cluster: the history stream holds a message that is not a publication ({e})"
                );
                return;
            }
        };
        let rooms: Result<Vec<Room>, _> = wire.r.iter().map(Room::parse).collect();
        match rooms {
            Ok(rooms) => {
                self.local.publish_numbered(&rooms, &wire.d, seq);
            }
            Err(e) => tracing::warn!(
                seq,
                "cluster: the history stream holds a publication with an invalid room ({e})"
            ),
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

/// Where [`NatsEngine::route`] sent a publication.
enum Route {
    /// To the history stream, to be delivered when read back.
    Stream,
    /// Nowhere yet: deliver it to this host's clients alone.
    Local,
    /// Nowhere yet: deliver it here and send it on core NATS.
    Core,
}

/// Fan-out across hosts; see the module docs.
pub struct NatsEngine {
    shared: Arc<Shared>,
    prefix: String,
    seq: AtomicU64,
    interest: Mutex<Interest>,
    link: Link,
    /// The history stream, when `[[history.rooms]]` names any.
    history: Option<HistoryStream>,
}

impl NatsEngine {
    /// The history a host of a cluster keeps for `config`'s rooms (to
    /// build the `local` engine [`NatsEngine::connect`] takes).
    pub fn history(config: &HistoryConfig) -> Option<Box<dyn History>> {
        mirror::Mirror::new(config).map(|m| Box::new(m) as Box<dyn History>)
    }

    /// Connects to `[cluster]`'s server (in the background: a server that
    /// is down now is retried, and local traffic is served meanwhile),
    /// with the history stream for `history`'s rooms when `local` keeps
    /// them (see [`NatsEngine::history`]).
    pub async fn connect(
        config: &ClusterConfig,
        history: &HistoryConfig,
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
        let history = match shared.local.has_history() {
            true => Some(
                HistoryStream::start(
                    link.client.clone(),
                    &config.subject_prefix,
                    history,
                    &shared,
                )
                .await,
            ),
            false => None,
        };
        Ok(Self {
            shared,
            prefix: config.subject_prefix.clone(),
            seq: AtomicU64::new(0),
            interest: Mutex::default(),
            link,
            history,
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

    /// Encodes a publication for the wire.
    fn encode(&self, rooms: &[Room], data: &RawValue) -> Option<Bytes> {
        let wire = WireOut {
            o: &self.shared.origin,
            n: self.seq.fetch_add(1, Ordering::Relaxed),
            r: rooms.iter().map(Room::to_json).collect(),
            d: data,
        };
        match serde_json::to_vec(&wire) {
            Ok(p) => Some(Bytes::from(p)),
            Err(e) => {
                tracing::warn!("cluster: a publication could not be encoded ({e})");
                None
            }
        }
    }

    /// Where a publication goes: to the history stream when it reaches a
    /// history room and the stream is being read; to this host's clients
    /// alone when it reaches one and the link is down or the stream not
    /// read (see the module docs); else here and on core NATS.
    fn route(&self, rooms: &[Room], data: &RawValue) -> Route {
        let Some(stream) = &self.history else {
            return Route::Core;
        };
        let Some(first) = self.shared.local.history_covered(rooms) else {
            return Route::Core;
        };
        if !self.shared.status.connected() || !stream.ready() {
            return Route::Local;
        }
        let prefix = format!("{}.h", self.prefix);
        let room = &rooms[first];
        let subject =
            room_subject(&prefix, room, false).unwrap_or_else(|| wild_subject(&prefix, room));
        if let Some(payload) = self.encode(rooms, data) {
            stream.publish(subject, payload);
        }
        Route::Stream
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
        let Some(payload) = self.encode(rooms, data) else {
            return;
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

    fn session_rooms(&self, session: u64) -> Vec<(Arc<str>, Room)> {
        self.shared.local.session_rooms(session)
    }

    /// Delivers here as the memory engine does, then sends it on; one
    /// that reaches a history room goes to the history stream instead,
    /// and is delivered here when read back (so what it reached is not
    /// known yet: the delivery counts nothing).
    fn publish(&self, rooms: &[Room], data: &RawValue) -> Delivery {
        match self.route(rooms, data) {
            Route::Stream => return Delivery::default(),
            Route::Local => return self.shared.local.publish(rooms, data),
            Route::Core => {}
        }
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

    /// The history stream is what is kept: nothing to save here.
    fn save_history(&self, path: &std::path::Path) -> Result<bool, SnapshotError> {
        if self.history.is_some() {
            return Ok(false);
        }
        self.shared.local.save_history(path)
    }

    fn cluster(&self) -> Option<serde_json::Value> {
        let mut report = self.shared.status.report(&self.shared.origin);
        if let Some(stream) = &self.history {
            report["history_stream"] = stream.ready().into();
        }
        Some(report)
    }

    fn nats(&self) -> Option<(async_nats::Client, &str)> {
        Some((self.link.client.clone(), &self.prefix))
    }
}

#[cfg(test)]
mod tests;
