//! `{"type":"status"}`: high-templar's counters, for admins.

use std::sync::atomic::Ordering;

use serde_json::json;

use crate::protocol::WireError;

use super::context::Session;

/// A status frame.
pub struct Status;

impl Status {
    /// Answers the counters, or `forbidden` to a non-admin.
    pub fn apply(self, session: &mut Session) {
        if !session.principal.is_admin() {
            return session.refuse(WireError::Forbidden, None);
        }
        let state = &session.state;
        let c = &state.sessions.counters;
        let counters = json!({
            "open_connections": state.sessions.open(),
            "num_rooms": state.fanout.num_rooms(),
            "num_subscriptions": state.fanout.num_subscriptions(),
            "online_since": state.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "rabbitmq_messages_received": c.amqp_messages_received.load(Ordering::Relaxed),
            "ws_messages_received": c.ws_messages_received.load(Ordering::Relaxed),
            "ws_messages_send": c.ws_messages_send.load(Ordering::Relaxed),
            "ws_messages_send_error": c.ws_messages_send_error.load(Ordering::Relaxed),
            "slow_consumers_closed": c.slow_consumers_closed.load(Ordering::Relaxed),
            "connections_refused": c.connections_refused.load(Ordering::Relaxed),
            "modules": state.registry.running().len(),
        });
        session.reply(session.dialect.status(&counters));
    }
}
