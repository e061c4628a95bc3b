//! `{"type":"status"}`: high-templar's counters, for whom `[gateway]
//! status` allows (everyone by default, as high-templar).

use std::sync::atomic::Ordering;

use crate::{
    config::StatusAccess,
    protocol::{StatusReport, WireError},
};

use super::context::Session;

/// A status frame.
pub struct Status;

impl Status {
    /// Answers the counters, or `forbidden` where the config says so.
    pub fn apply(self, session: &mut Session) {
        let allowed = match session.state.config.load().gateway.status {
            StatusAccess::Everyone => true,
            StatusAccess::Admins => session.principal.is_admin(),
            StatusAccess::Off => false,
        };
        if !allowed {
            return session.refuse(WireError::Forbidden, None);
        }
        let state = &session.state;
        let c = &state.sessions.counters;
        let report = StatusReport {
            open_connections: state.sessions.open(),
            num_rooms: state.fanout.num_rooms(),
            num_subscriptions: state.fanout.num_subscriptions(),
            online_since: Some(state.started),
            amqp_messages_received: c.amqp_messages_received.load(Ordering::Relaxed),
            ws_messages_received: c.ws_messages_received.load(Ordering::Relaxed),
            ws_messages_send: c.ws_messages_send.load(Ordering::Relaxed),
            ws_messages_send_error: c.ws_messages_send_error.load(Ordering::Relaxed),
            ws_messages_send_queued: state.sessions.queued(),
            slow_consumers_closed: c.slow_consumers_closed.load(Ordering::Relaxed),
            connections_refused: c.connections_refused.load(Ordering::Relaxed),
            modules: state.registry.running().len(),
        };
        session.reply(session.dialect.status(&report));
    }
}
