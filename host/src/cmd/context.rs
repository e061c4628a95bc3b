//! [`Session`]: a connected, authenticated client as the commands see it —
//! who it is, where its frames go, in which dialect, and its calls.

use std::{sync::Arc, time::Instant};

use crate::{
    auth::Principal,
    config::Limits,
    protocol::{Dialect, WireError},
    rooms::Room,
    sessions::{Outbox, SessionCalls},
    state::AppState,
};

/// A connected, authenticated client.
pub struct Session {
    /// Session number.
    pub id: u64,
    /// Session name sent to the client.
    pub name: String,
    /// Who is connected.
    pub principal: Principal,
    /// Room patterns the user may subscribe to (shared with the calls the
    /// user makes: modules publish for them only where these permit).
    pub allowed: Arc<[Room]>,
    /// The session's outbox.
    pub outbox: Outbox,
    /// Shared host state.
    pub state: Arc<AppState>,
    /// Limits at connect time.
    pub limits: Limits,
    /// How this session's frames are written.
    pub dialect: &'static dyn Dialect,
    /// Its calls by `requestId` (kept when the session is parked).
    pub calls: Arc<SessionCalls>,
    rate_window: Instant,
    rate_used: u32,
}

/// What a session is made of.
pub struct SessionParts {
    /// Session number.
    pub id: u64,
    /// Who is connected.
    pub principal: Principal,
    /// Room patterns the user may subscribe to.
    pub allowed: Arc<[Room]>,
    /// The session's outbox.
    pub outbox: Outbox,
    /// Shared host state.
    pub state: Arc<AppState>,
    /// How this session's frames are written.
    pub dialect: &'static dyn Dialect,
    /// The calls of a resumed session; `None` for a new one.
    pub calls: Option<Arc<SessionCalls>>,
}

impl Session {
    /// A session of `parts`, with the limits in force now.
    pub fn new(parts: SessionParts) -> Self {
        let limits = parts.state.config.load().limits.clone();
        Self {
            id: parts.id,
            name: crate::sessions::session_name(parts.id),
            principal: parts.principal,
            allowed: parts.allowed,
            outbox: parts.outbox,
            state: parts.state,
            limits,
            dialect: parts.dialect,
            calls: parts.calls.unwrap_or_default(),
            rate_window: Instant::now(),
            rate_used: 0,
        }
    }

    /// Queues the reply to one of the client's frames.
    pub fn reply(&self, frame: String) {
        self.outbox.reply(frame);
    }

    /// Refuses one of the client's frames.
    pub fn refuse(&self, error: WireError, request_id: Option<&str>) {
        self.reply(self.dialect.error(error, request_id));
    }

    /// The frames sent before anything queued: the greeting (with the
    /// resume token) and the resource offer.
    pub fn hello(&self, resume_token: Option<&str>) -> Vec<String> {
        let p = &self.principal;
        let mut frames =
            vec![
                self.dialect
                    .authorized(&p.allowed_rooms, &p.user, &self.name, resume_token),
            ];
        frames.extend(self.resource_offer());
        frames
    }

    /// Sends the modules and commands this user may call (again: the
    /// modules changed).
    pub fn send_resource_offer(&self) {
        if let Some(offer) = self.resource_offer() {
            self.outbox.text(offer);
        }
    }

    fn resource_offer(&self) -> Option<String> {
        let modules = super::offer::modules_for(&self.state.registry, &self.principal);
        self.dialect.resource_offer(&modules)
    }

    /// Counts one call against `[limits] calls_per_second`; false past it.
    pub fn within_rate(&mut self) -> bool {
        if self.rate_window.elapsed().as_secs() >= 1 {
            self.rate_window = Instant::now();
            self.rate_used = 0;
        }
        self.rate_used += 1;
        self.rate_used <= self.limits.calls_per_second
    }
}
