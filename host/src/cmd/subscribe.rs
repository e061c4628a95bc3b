//! `{"type":"subscribe","room":{…},"requestId":"1"}`: subscribe to a room
//! the user is allowed, up to `[limits] max_subscriptions`.

use std::sync::Arc;

use serde_json::Value;

use crate::{
    protocol::WireError,
    rooms::{IndexError, Room},
};

use super::context::Session;

/// A subscribe frame.
pub struct Subscribe {
    /// The room as sent (`Null` when missing).
    pub room: Value,
    /// The subscription's id, echoed on every room message.
    pub request_id: Option<String>,
}

impl Subscribe {
    /// From the decoded frame's fields.
    pub fn from_frame(room: Value, request_id: Option<String>) -> Self {
        Self { room, request_id }
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
        match fanout.subscribe(
            session.id,
            Arc::from(rid.as_str()),
            room,
            session.outbox.clone(),
        ) {
            Ok(()) => session.reply(session.dialect.success(Some(&rid))),
            Err(IndexError::RequestIdInUse) => {
                session.refuse(WireError::RequestIdInUse, Some(&rid));
            }
            #[allow(unreachable_patterns)]
            Err(_) => session.refuse(WireError::InvalidRoom, Some(&rid)),
        }
    }
}
