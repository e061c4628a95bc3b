//! `{"type":"subscribe","room":{…},"requestId":"1"}`: subscribe to a room
//! the user is allowed, up to `[limits] max_subscriptions`. A `modhost.v1`
//! client may add `"since":{"offset","epoch"}` to get what it missed in a
//! room with history (the engine queues the reply and the recovery).

use std::sync::Arc;

use serde_json::Value;

use crate::{
    fanout::Subscription,
    protocol::{StreamPosition, WireError},
    rooms::{IndexError, Room},
};

use super::context::Session;

/// A subscribe frame.
pub struct Subscribe {
    /// The room as sent (`Null` when missing).
    pub room: Value,
    /// The subscription's id, echoed on every room message.
    pub request_id: Option<String>,
    /// The last position the client saw in the room's history.
    pub since: Option<StreamPosition>,
}

impl Subscribe {
    /// From the decoded frame's fields.
    pub fn from_frame(
        room: Value,
        request_id: Option<String>,
        since: Option<StreamPosition>,
    ) -> Self {
        Self {
            room,
            request_id,
            since,
        }
    }

    /// Subscribes, or answers why not.
    pub fn apply(self, session: &mut Session) {
        let Some(rid) = self.request_id else {
            return session.refuse(WireError::NoRequestId, None);
        };
        let room = match Room::parse(&self.room) {
            Ok(room) => room,
            Err(_) => return session.refuse(WireError::InvalidRoom, Some(&rid)),
        };
        if !session.allowed.iter().any(|a| a.permits(&room)) {
            return session.refuse(WireError::RoomNotFound, Some(&rid));
        }
        let fanout = &session.state.fanout;
        if fanout.session_subscriptions(session.id) >= session.limits.max_subscriptions {
            return session.refuse(WireError::TooManySubscriptions, Some(&rid));
        }
        // Missed publications are room messages: they must fit beside what
        // already waits, or the client would be closed as too slow.
        let unsent = session.outbox.state().unsent();
        match fanout.subscribe(Subscription {
            session: session.id,
            request_id: Arc::from(rid.as_str()),
            room,
            outbox: session.outbox.clone(),
            dialect: session.dialect,
            since: self.since,
            max_recovered: session.limits.send_queue.saturating_sub(unsent),
        }) {
            Ok(()) => {}
            Err(IndexError::RequestIdInUse) => {
                session.refuse(WireError::RequestIdInUse, Some(&rid));
            }
            #[allow(unreachable_patterns)]
            Err(_) => session.refuse(WireError::InvalidRoom, Some(&rid)),
        }
    }
}
