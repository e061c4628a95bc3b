//! The replay guard: a module's `resolve_id` is accepted once.
//!
//! sse-platform's client puts no time or counter in a frame, only a fresh
//! uuid4 `resolve_id`, so "once" is all the host can check without changing
//! the client. It is bounded two ways, per module:
//! - **time**: an id is remembered for `[external] replay_window_secs`
//!   (300 s by default). A frame captured and sent again after that would
//!   pass; `challenge = "required"` closes that hole for clients that sign
//!   the connection's challenge into every frame (a frame from another
//!   connection never verifies there).
//! - **count**: at most `replay_max_ids` ids (262,144 by default). Past it
//!   the oldest is forgotten early, so the window shrinks for a module that
//!   sends faster than `max_ids / window` frames per second; that is logged.
//!
//! An id is kept as a 64-bit keyed hash (SipHash with a per-process random
//! key, so nobody can aim for a collision) plus its arrival time: about
//! 40 bytes each with the map and queue overhead, ~10 MB per module at the
//! default count. Only frames whose signature verified are remembered, so
//! only modules with a verify key take memory here.

use std::{
    collections::{HashMap, HashSet, VecDeque, hash_map::RandomState},
    hash::BuildHasher as _,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::util::sync;

/// At most one warning per module about a shrunken window per this long.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// `resolve_id`s seen, per module.
#[derive(Default)]
pub struct ReplayGuard {
    modules: Mutex<HashMap<String, Seen>>,
    hasher: RandomState,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<u64>,
    order: VecDeque<(Instant, u64)>,
    warned: Option<Instant>,
}

/// A frame whose `resolve_id` was accepted before.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "resolve_id {0:?} was already used by this module: a frame is accepted once; send a new uuid4 with every frame"
)]
pub struct Replayed(pub String);

impl ReplayGuard {
    /// Accepts `resolve_id` from `module` once within `window`, keeping at
    /// most `max_ids` per module.
    pub fn check(
        &self,
        module: &str,
        resolve_id: &str,
        now: Instant,
        window: Duration,
        max_ids: usize,
    ) -> Result<(), Replayed> {
        let hash = self.hasher.hash_one((module, resolve_id));
        let mut modules = sync::lock(&self.modules);
        let seen = match modules.get_mut(module) {
            Some(seen) => seen,
            None => modules.entry(module.to_owned()).or_default(),
        };
        while let Some(&(at, old)) = seen.order.front() {
            if now.saturating_duration_since(at) < window {
                break;
            }
            seen.order.pop_front();
            seen.ids.remove(&old);
        }
        if !seen.ids.insert(hash) {
            return Err(Replayed(resolve_id.to_owned()));
        }
        seen.order.push_back((now, hash));
        if seen.order.len() > max_ids.max(1)
            && let Some((at, old)) = seen.order.pop_front()
        {
            seen.ids.remove(&old);
            if seen
                .warned
                .is_none_or(|w| now.duration_since(w) >= WARN_EVERY)
            {
                seen.warned = Some(now);
                tracing::warn!(
                    module,
                    "module {module} sends more frames than [external] replay_max_ids = {max_ids} per replay window: ids are forgotten after {:.0?} instead of {window:?}; raise replay_max_ids",
                    now.duration_since(at)
                );
            }
        }
        Ok(())
    }

    /// Ids remembered for `module` (for tests and the admin list).
    pub fn remembered(&self, module: &str) -> usize {
        sync::lock(&self.modules)
            .get(module)
            .map_or(0, |s| s.order.len())
    }
}
