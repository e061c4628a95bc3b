//! `{"type":"unsubscribe","requestId":"1"}`: ends one subscription.

use crate::protocol::WireError;

use super::context::Session;

/// An unsubscribe frame.
pub struct Unsubscribe {
    /// The subscription's id.
    pub request_id: Option<String>,
}

impl Unsubscribe {
    /// From the decoded frame's field.
    pub fn from_frame(request_id: Option<String>) -> Self {
        Self { request_id }
    }

    /// Unsubscribes, or answers `not-subscribed`.
    pub fn apply(self, session: &mut Session) {
        let Some(rid) = self.request_id else {
            return session.refuse(WireError::NoRequestId, None);
        };
        if session.state.fanout.unsubscribe(session.id, &rid) {
            session.reply(session.dialect.success(Some(&rid)));
        } else {
            session.refuse(WireError::NotSubscribed, Some(&rid));
        }
    }
}
