//! Sessions whose client dropped and may come back with `?resume=<token>`
//! within the grace period. A parked session keeps its subscriptions, its
//! call log and its outbox, which collects what the client misses.

use std::{collections::HashMap, sync::Mutex};

use super::{
    calls::SessionCalls,
    outbox::{Outbox, OutboxReceiver},
};

/// A session waiting for its client.
pub struct Parked {
    /// Session number (subscriptions are indexed by it).
    pub id: u64,
    /// The user it belongs to: only they can resume it.
    pub user: String,
    /// Its outbox (subscriptions and running calls hold clones).
    pub outbox: Outbox,
    /// What it collected while parked.
    pub rx: OutboxReceiver,
    /// Its calls by requestId, so repeats after a resume still run once.
    pub calls: std::sync::Arc<SessionCalls>,
}

/// Parked sessions by resume token.
#[derive(Default)]
pub struct ParkedSessions {
    by_token: Mutex<HashMap<String, Parked>>,
}

/// Why a resume did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeRefused {
    /// No session is parked under that token (never was, or it expired).
    Unknown,
    /// The token belongs to another user's session.
    OtherUser,
}

impl ParkedSessions {
    pub fn park(&self, token: String, parked: Parked) {
        self.lock().insert(token, parked);
    }

    /// Takes the session parked under `token` for `user`.
    pub fn take(&self, token: &str, user: &str) -> Result<Parked, ResumeRefused> {
        let mut table = self.lock();
        match table.get(token) {
            None => Err(ResumeRefused::Unknown),
            Some(p) if p.user != user => Err(ResumeRefused::OtherUser),
            Some(_) => Ok(table.remove(token).expect("present")),
        }
    }

    /// Removes the session parked under `token` if it is still session `id`
    /// (the grace period ended). Returns it.
    pub fn expire(&self, token: &str, id: u64) -> Option<Parked> {
        let mut table = self.lock();
        if table.get(token).is_some_and(|p| p.id == id) {
            table.remove(token)
        } else {
            None
        }
    }

    /// Session numbers of the parked sessions.
    pub fn ids(&self) -> std::collections::HashSet<u64> {
        self.lock().values().map(|p| p.id).collect()
    }

    /// Number of parked sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is parked.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        crate::util::sync::lock(&self.by_token)
    }
}
