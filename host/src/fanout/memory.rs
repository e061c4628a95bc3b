//! In-memory fan-out: the room index with each subscription's outbox, and
//! the rooms' history when `[[history.rooms]]` names any.
//! A publish encodes its data once and pushes a shared frame into each
//! matching session's outbox without waiting.
//!
//! # Recovered and live messages: none lost, none twice
//!
//! A subscribe with `since` must hand over from the history to live
//! delivery exactly at one publication. Two locks make that so, always
//! taken in this order: the history lock, then the index lock.
//! - a publish to a room with history holds the history lock from
//!   recording the publication until it has pushed it to every matching
//!   outbox (it finds them under the index lock, inside);
//! - a subscribe with history holds the history lock while it reads what
//!   was missed, inserts the subscription (under the index lock) and
//!   queues its reply, the missed publications and `recovered`.
//!
//! So each publication is wholly before a subscribe (it is in the history
//! the subscribe reads, and was pushed before the subscription existed)
//! or wholly after (not in what was read, and the subscription exists
//! when it is matched, so it is pushed live, behind `recovered`). Holding
//! the history lock while pushing also keeps each room's offsets in order
//! in every outbox. Publishes that reach no history take the index lock
//! alone, as before. A proptest over interleavings checks this.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use serde_json::value::RawValue;

use crate::{
    protocol::{Dialect, PublishFrame},
    rooms::{IndexError, Room, RoomIndex},
    sessions::{Outbox, Outgoing},
    util::sync::{lock, read, write},
};

use super::{
    engine::{Delivery, FanoutEngine, Subscription},
    history::{History, HistoryPage, SnapshotError, Stamps, now_ms},
};

/// Up to this many recorded rooms, a room's frame is found by comparing
/// them in turn; past it, through a map.
const LINEAR_STAMPS: usize = 8;

/// How a subscription's room messages are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbering {
    /// No offsets: the dialect has none, or the room keeps no history.
    None,
    /// The room's own offsets (a concrete room with history).
    Room,
    /// The host-wide sequence (a room with `"*"` that overlaps history).
    Host,
}

/// One subscription's delivery: its outbox and numbering.
pub(super) struct Subscriber {
    outbox: Outbox,
    numbering: Numbering,
}

/// Subscriptions of all sessions on this host, and the rooms' history.
#[derive(Default)]
pub struct MemoryEngine {
    index: RwLock<RoomIndex<Subscriber>>,
    history: Option<Mutex<Box<dyn History>>>,
}

impl MemoryEngine {
    /// An engine that keeps `history` for the rooms it covers.
    pub fn with_history(history: Option<Box<dyn History>>) -> Self {
        Self {
            index: RwLock::default(),
            history: history.map(Mutex::new),
        }
    }

    /// Forgets the history (see [`History::forget`]); nothing without one.
    pub(crate) fn forget_history(&self) {
        if let Some(history) = &self.history {
            lock(history).forget();
        }
    }

    /// Whether this engine keeps room history.
    pub(crate) fn has_history(&self) -> bool {
        self.history.is_some()
    }

    /// The first of `rooms` the history covers (publishes to it are
    /// numbered).
    pub(crate) fn history_covered(&self, rooms: &[Room]) -> Option<usize> {
        let history = lock(self.history.as_ref()?);
        rooms.iter().position(|r| history.covers(r))
    }

    /// See [`History::resync`]; `None` without a history.
    pub(crate) fn resync_history(&self, epoch: &str, last: u64) -> Option<u64> {
        self.history
            .as_ref()
            .and_then(|h| lock(h).resync(epoch, last))
    }

    /// Delivers a publication numbered `seq` by the shared stream, as
    /// [`FanoutEngine::publish`] does (same locks, same order); nothing
    /// when `seq` was already delivered.
    pub(crate) fn publish_numbered(&self, rooms: &[Room], data: &RawValue, seq: u64) -> Delivery {
        self.publish_recorded(rooms, data, |h| h.append_at(rooms, data, seq, now_ms()))
    }

    /// A publish recorded in the history by `record`, called with the
    /// history lock held (`None` from it: nothing is delivered), and
    /// pushed with that lock still held: see the module docs.
    fn publish_recorded(
        &self,
        rooms: &[Room],
        data: &RawValue,
        record: impl FnOnce(&mut dyn History) -> Option<Stamps>,
    ) -> Delivery {
        let Some(history) = &self.history else {
            return self.publish_plain(rooms, data);
        };
        let mut history = lock(history);
        let Some(stamps) = record(&mut **history) else {
            return Delivery::default();
        };
        if stamps.is_empty() {
            drop(history);
            return self.publish_plain(rooms, data);
        }
        let delivery = self.publish_stamped(rooms, data, &stamps);
        drop(history);
        delivery
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RoomIndex<Subscriber>> {
        read(&self.index)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RoomIndex<Subscriber>> {
        write(&self.index)
    }

    /// Inserts the subscription and queues its success reply.
    fn insert(
        &self,
        sub: Subscription,
        numbering: Numbering,
        position: Option<&crate::protocol::StreamPosition>,
    ) -> Result<(Outbox, Arc<str>, &'static dyn Dialect), IndexError> {
        let subscriber = Subscriber {
            outbox: sub.outbox.clone(),
            numbering,
        };
        let mut index = self.write();
        index.subscribe(sub.session, sub.request_id.clone(), sub.room, subscriber)?;
        sub.outbox
            .reply(sub.dialect.subscribed(Some(&sub.request_id), position));
        Ok((sub.outbox, sub.request_id, sub.dialect))
    }

    /// Delivers to the matching subscriptions, without offsets.
    fn publish_plain(&self, rooms: &[Room], data: &RawValue) -> Delivery {
        let mut targets: Vec<(Outbox, Arc<str>)> = Vec::new();
        self.read()
            .for_each_match(rooms, |_room, _session, request_id, sub| {
                targets.push((sub.outbox.clone(), request_id.clone()));
            });
        let frame = PublishFrame::new(data);
        deliver(
            targets
                .into_iter()
                .map(|(outbox, id)| (outbox, Outgoing::Publish(frame.clone(), id))),
        )
    }

    /// Delivers a publication the history recorded: each subscription
    /// gets the frame numbered as it is (its room's offset, the host
    /// sequence, or none).
    ///
    /// The index hands over a leaf's subscriptions one after another with
    /// the same room, so which frame the room gets is looked up once per
    /// leaf (by pointer), not once per subscription: hashing a room for
    /// each of 100 subscribers doubled the engine's cost of a publish.
    fn publish_stamped(&self, rooms: &[Room], data: &RawValue, stamps: &Stamps) -> Delivery {
        let plain = PublishFrame::new(data);
        let by_room: HashMap<&Room, &PublishFrame> = if stamps.rooms.len() > LINEAR_STAMPS {
            stamps.rooms.iter().map(|(r, f)| (r, f)).collect()
        } else {
            HashMap::new()
        };
        let room_frame = |room: &Room| -> Option<&PublishFrame> {
            if stamps.rooms.len() > LINEAR_STAMPS {
                by_room.get(room).copied()
            } else {
                stamps.rooms.iter().find(|(r, _)| r == room).map(|(_, f)| f)
            }
        };
        let mut host_frame: Option<PublishFrame> = None;
        // The leaf last seen: its room, its own frame, whether a recorded
        // room matches it (for subscriptions numbered by the host).
        let mut leaf: Option<(*const Room, Option<&PublishFrame>, bool)> = None;
        let mut targets: Vec<(Outbox, Outgoing)> = Vec::new();
        self.read()
            .for_each_match(rooms, |room, _session, request_id, sub| {
                let here = std::ptr::from_ref(room);
                let (own, reached) = match leaf {
                    Some((seen, own, reached)) if seen == here => (own, reached),
                    _ => {
                        let own = room_frame(room);
                        let reached = room.has_wildcard()
                            && stamps.rooms.iter().any(|(r, _)| room.matches(r));
                        leaf = Some((here, own, reached));
                        (own, reached)
                    }
                };
                let frame = match sub.numbering {
                    Numbering::Room => own.unwrap_or(&plain),
                    Numbering::Host if reached => {
                        host_frame.get_or_insert_with(|| plain.at_offset(stamps.seq))
                    }
                    Numbering::None | Numbering::Host => &plain,
                };
                targets.push((
                    sub.outbox.clone(),
                    Outgoing::Publish(frame.clone(), request_id.clone()),
                ));
            });
        deliver(targets.into_iter())
    }
}

/// Pushes each item; counts who took it.
fn deliver(targets: impl Iterator<Item = (Outbox, Outgoing)>) -> Delivery {
    let mut delivery = Delivery::default();
    for (outbox, item) in targets {
        if outbox.push(item) {
            delivery.delivered += 1;
        } else {
            delivery.dropped += 1;
        }
    }
    delivery
}

impl FanoutEngine for MemoryEngine {
    /// Subscribes, recovering from the history when asked (see the
    /// module docs for why nothing is lost or repeated).
    fn subscribe(&self, sub: Subscription) -> Result<(), IndexError> {
        let history = self.history.as_ref().filter(|_| sub.dialect.offsets());
        let Some(history) = history else {
            self.insert(sub, Numbering::None, None)?;
            return Ok(());
        };
        let mut history = lock(history);
        if !history.covers(&sub.room) {
            drop(history);
            let since = sub.since.is_some();
            let (outbox, id, dialect) = self.insert(sub, Numbering::None, None)?;
            if since && let Some(frame) = dialect.recovered(&id, false) {
                outbox.reply(frame);
            }
            return Ok(());
        }
        let now = now_ms();
        // Read before `position`, which makes a stream that does not exist
        // yet: `since` cannot be in a stream made now.
        let recovery = sub
            .since
            .as_ref()
            .map(|since| history.recover(&sub.room, since, sub.max_recovered, now));
        let position = history.position(&sub.room, now);
        let numbering = if sub.room.has_wildcard() {
            Numbering::Host
        } else {
            Numbering::Room
        };
        let (outbox, id, dialect) = self.insert(sub, numbering, position.as_ref())?;
        if let Some(recovery) = recovery {
            for frame in recovery.frames {
                outbox.push(Outgoing::Publish(frame, id.clone()));
            }
            if let Some(frame) = dialect.recovered(&id, recovery.complete) {
                outbox.reply(frame);
            }
        }
        drop(history);
        Ok(())
    }

    /// Removes one subscription; false if there was none.
    fn unsubscribe(&self, session: u64, request_id: &str) -> bool {
        self.write().unsubscribe(session, request_id)
    }

    /// Removes all of a session's subscriptions.
    fn remove_session(&self, session: u64) -> usize {
        self.write().remove_session(session)
    }

    /// Removes the subscriptions of `session` whose room `keep` refuses.
    fn retain_session(&self, session: u64, keep: &dyn Fn(&Room) -> bool) -> Vec<Arc<str>> {
        self.write().retain_session(session, keep)
    }

    /// Subscriptions held by `session`.
    fn session_subscriptions(&self, session: u64) -> usize {
        self.read().session_subscriptions(session)
    }

    fn session_rooms(&self, session: u64) -> Vec<(Arc<str>, Room)> {
        self.read().session_rooms(session)
    }

    /// Delivers `data` to every subscription matching any of `rooms`, once
    /// each. Returns how many outboxes took it.
    ///
    /// Only the matching is done under the index lock: it collects each
    /// subscription's outbox and id (two reference counts each), and the
    /// pushes, which allocate and wake writers, happen after the lock is
    /// released, so a subscribe waits for the index walk alone. The list
    /// costs less than the queued frames it turns into.
    fn publish(&self, rooms: &[Room], data: &RawValue) -> Delivery {
        self.publish_recorded(rooms, data, |h| Some(h.append(rooms, data, now_ms())))
    }

    /// Number of rooms with at least one subscriber.
    fn num_rooms(&self) -> usize {
        self.read().num_rooms()
    }

    /// Number of subscriptions.
    fn num_subscriptions(&self) -> usize {
        self.read().num_subscriptions()
    }

    /// Rooms and their subscriber counts, for the admin API.
    fn rooms(&self) -> Vec<(serde_json::Value, usize)> {
        self.read()
            .rooms()
            .map(|(room, n)| (room.to_json(), n))
            .collect()
    }

    fn history(&self, room: &Room, limit: usize) -> Option<HistoryPage> {
        let history = self.history.as_ref()?;
        lock(history).page(room, limit, now_ms())
    }

    fn history_bytes(&self) -> usize {
        self.history.as_ref().map_or(0, |h| lock(h).bytes())
    }

    fn save_history(&self, path: &std::path::Path) -> Result<bool, SnapshotError> {
        let Some(history) = &self.history else {
            return Ok(false);
        };
        lock(history).save(path)?;
        Ok(true)
    }
}
