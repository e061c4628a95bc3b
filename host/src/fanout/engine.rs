//! The [`FanoutEngine`] contract: what every engine (in memory, with
//! history, across hosts) does for the sessions and publishers.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::{
    protocol::{Dialect, StreamPosition},
    rooms::{IndexError, Room},
    sessions::Outbox,
};

use super::history::{HistoryPage, SnapshotError};

/// One subscribe, as the engine needs it.
pub struct Subscription {
    /// The subscribing session.
    pub session: u64,
    /// The subscription's id, echoed on every room message.
    pub request_id: Arc<str>,
    /// The room (may hold `"*"`).
    pub room: Room,
    /// Where its messages and replies go.
    pub outbox: Outbox,
    /// How the session writes its frames: whether its room messages carry
    /// offsets, and how the reply and the recovery's end are worded.
    pub dialect: &'static dyn Dialect,
    /// The position the client last saw, to send what it missed after it.
    pub since: Option<StreamPosition>,
    /// The most missed publications that may be queued for it (the room
    /// left in its outbox); more is reported as an incomplete recovery.
    pub max_recovered: usize,
}

/// What a publish reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Outboxes that took the message.
    pub delivered: u64,
    /// Outboxes that refused it (the session fell behind or left).
    pub dropped: u64,
}

/// Decides who gets each publish. Implementations never block a publisher
/// on a subscriber: a full outbox drops the message (and closes its
/// session), it does not wait.
pub trait FanoutEngine: Send + Sync + 'static {
    /// Subscribes `sub.request_id` of `sub.session` to `sub.room` and
    /// queues the reply (with the room's history position, if any), then,
    /// when `since` is given, every publication missed since and the
    /// `recovered` frame, all before any live message of the subscription.
    /// A `request_id` already subscribed in the session is refused, and
    /// nothing is queued.
    fn subscribe(&self, sub: Subscription) -> Result<(), IndexError>;

    /// Removes one subscription; false if there was none.
    fn unsubscribe(&self, session: u64, request_id: &str) -> bool;

    /// Removes every subscription of `session`; returns how many.
    fn remove_session(&self, session: u64) -> usize;

    /// Removes the subscriptions of `session` whose room `keep` refuses;
    /// returns their request ids.
    fn retain_session(&self, session: u64, keep: &dyn Fn(&Room) -> bool) -> Vec<Arc<str>>;

    /// Subscriptions held by `session`.
    fn session_subscriptions(&self, session: u64) -> usize;

    /// The subscriptions of `session`: each one's request id and room (to
    /// hand a parked session to another host).
    fn session_rooms(&self, session: u64) -> Vec<(Arc<str>, Room)>;

    /// Delivers `data` to every subscription matching any of `rooms`, once
    /// per subscription.
    fn publish(&self, rooms: &[Room], data: &RawValue) -> Delivery;

    /// Rooms with at least one subscriber.
    fn num_rooms(&self) -> usize;

    /// Subscriptions of all sessions.
    fn num_subscriptions(&self) -> usize;

    /// Rooms and their subscriber counts, for the admin API.
    fn rooms(&self) -> Vec<(serde_json::Value, usize)>;

    /// A concrete room's position and newest `limit` publications; `None`
    /// when it keeps no history (or has none yet).
    fn history(&self, room: &Room, limit: usize) -> Option<HistoryPage>;

    /// Bytes the room history holds (0 without history).
    fn history_bytes(&self) -> usize;

    /// Keeps the room history at `path` for the next start; false when
    /// there is none to keep.
    fn save_history(&self, path: &std::path::Path) -> Result<bool, SnapshotError>;

    /// The cluster connection's state for `/health`; `None` on a host
    /// that runs alone.
    fn cluster(&self) -> Option<serde_json::Value> {
        None
    }

    /// The cluster's NATS connection and subject prefix, for what else
    /// goes between hosts (a session's handover); `None` on a host that
    /// runs alone.
    fn nats(&self) -> Option<(async_nats::Client, &str)> {
        None
    }
}
