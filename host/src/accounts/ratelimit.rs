//! Failed-login limits, per client address and per user name, in bounded
//! memory.
//!
//! Each key (an address, a name) counts its failures in a fixed window;
//! past the limit, every login for that key is refused until the window
//! ends, before any password is hashed. Names that do not exist are
//! counted like names that do, so the limit tells nothing about who
//! exists. The table holds at most `capacity` keys: when it is full, keys
//! whose window has passed are dropped, and if it is still full, a new key
//! is treated as limited (fail closed) rather than evicting one an attacker
//! is being held back by.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::util::sync::lock;

/// A failure counter per key.
#[derive(Debug)]
pub struct FailureLimit {
    limit: u32,
    window: Duration,
    capacity: usize,
    keys: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureLimit {
    /// At most `limit` failures per key per `window`, for at most
    /// `capacity` keys at once.
    pub fn new(limit: u32, window: Duration, capacity: usize) -> FailureLimit {
        FailureLimit {
            limit,
            window,
            capacity,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may try now.
    pub fn allowed(&self, key: &str, now: Instant) -> bool {
        let mut keys = lock(&self.keys);
        match keys.get(key) {
            Some((start, count)) if now.duration_since(*start) < self.window => *count < self.limit,
            Some(_) => {
                keys.remove(key);
                true
            }
            None => keys.len() < self.capacity || self.prune(&mut keys, now),
        }
    }

    /// Count a failure for `key`.
    pub fn failed(&self, key: &str, now: Instant) {
        let mut keys = lock(&self.keys);
        if !keys.contains_key(key) && keys.len() >= self.capacity && !self.prune(&mut keys, now) {
            return;
        }
        let entry = keys.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Forget `key`'s failures (after a successful login).
    pub fn clear(&self, key: &str) {
        lock(&self.keys).remove(key);
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        lock(&self.keys).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop keys whose window has passed; whether there is room now.
    fn prune(&self, keys: &mut HashMap<String, (Instant, u32)>, now: Instant) -> bool {
        keys.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        if keys.len() >= self.capacity {
            tracing::warn!(
                capacity = self.capacity,
                "login failure table is full: refusing logins for new names and addresses until a window passes"
            );
            return false;
        }
        true
    }
}
