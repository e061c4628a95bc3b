//! The [`FanoutEngine`] contract: what every engine (in memory, with
//! history, across hosts) does for the sessions and publishers.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::{
    rooms::{IndexError, Room},
    sessions::Outbox,
};

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
    /// Subscribes `request_id` of `session` to `room`; room messages go to
    /// `outbox`. A `request_id` already subscribed in the session is refused.
    fn subscribe(
        &self,
        session: u64,
        request_id: Arc<str>,
        room: Room,
        outbox: Outbox,
    ) -> Result<(), IndexError>;

    /// Removes one subscription; false if there was none.
    fn unsubscribe(&self, session: u64, request_id: &str) -> bool;

    /// Removes every subscription of `session`; returns how many.
    fn remove_session(&self, session: u64) -> usize;

    /// Removes the subscriptions of `session` whose room `keep` refuses;
    /// returns their request ids.
    fn retain_session(&self, session: u64, keep: &dyn Fn(&Room) -> bool) -> Vec<Arc<str>>;

    /// Subscriptions held by `session`.
    fn session_subscriptions(&self, session: u64) -> usize;

    /// Delivers `data` to every subscription matching any of `rooms`, once
    /// per subscription.
    fn publish(&self, rooms: &[Room], data: &RawValue) -> Delivery;

    /// Rooms with at least one subscriber.
    fn num_rooms(&self) -> usize;

    /// Subscriptions of all sessions.
    fn num_subscriptions(&self) -> usize;

    /// Rooms and their subscriber counts, for the admin API.
    fn rooms(&self) -> Vec<(serde_json::Value, usize)>;
}
