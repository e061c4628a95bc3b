//! In-memory fan-out: the room index with each subscription's outbox.
//! A publish encodes its data once and pushes a shared frame into each
//! matching session's outbox without waiting.

use std::sync::{Arc, RwLock};

use serde_json::value::RawValue;

use crate::{
    protocol::PublishFrame,
    rooms::{IndexError, Room, RoomIndex},
    sessions::{Outbox, Outgoing},
    util::sync::{read, write},
};

use super::engine::{Delivery, FanoutEngine};

/// Subscriptions of all sessions on this host.
#[derive(Default)]
pub struct MemoryEngine {
    index: RwLock<RoomIndex<Outbox>>,
}

impl FanoutEngine for MemoryEngine {
    /// Subscribes `request_id` of `session` to `room`.
    fn subscribe(
        &self,
        session: u64,
        request_id: Arc<str>,
        room: Room,
        outbox: Outbox,
    ) -> Result<(), IndexError> {
        self.write().subscribe(session, request_id, room, outbox)
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

    /// Delivers `data` to every subscription matching any of `rooms`, once
    /// each. Returns how many outboxes took it.
    ///
    /// Only the matching is done under the lock: it collects each
    /// subscription's outbox and id (two reference counts each), and the
    /// pushes, which allocate and wake writers, happen after the lock is
    /// released, so a subscribe waits for the index walk alone. The list
    /// costs less than the queued frames it turns into.
    fn publish(&self, rooms: &[Room], data: &RawValue) -> Delivery {
        let mut targets: Vec<(Outbox, Arc<str>)> = Vec::new();
        self.read()
            .for_each_match(rooms, |_room, _session, request_id, outbox| {
                targets.push((outbox.clone(), request_id.clone()));
            });
        let frame = PublishFrame::new(data);
        let (mut delivered, mut failed) = (0u64, 0u64);
        for (outbox, request_id) in targets {
            if outbox.push(Outgoing::Publish(frame.clone(), request_id)) {
                delivered += 1;
            } else {
                failed += 1;
            }
        }
        Delivery {
            delivered,
            dropped: failed,
        }
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
}

impl MemoryEngine {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, RoomIndex<Outbox>> {
        read(&self.index)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RoomIndex<Outbox>> {
        write(&self.index)
    }
}
