//! Calls a module generation has accepted and not yet answered.
//!
//! Whoever removes a call from the table answers it, exactly once: the
//! module's reply, its error, the timeout sweeper, or the drain when the
//! generation stops.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use modhost_plugin_api::ErrorCode;

use crate::util::sync;

/// Why a call failed, as the caller is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// Protocol error code.
    pub code: ErrorCode,
    /// What happened, for people.
    pub message: String,
}

impl CallFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Where a call's answer goes: a websocket session, an HTTP request, or the
/// module that made the call.
pub trait CallSink: Send {
    /// One item of a streaming reply (JSON text).
    fn item(&mut self, result: &str);
    /// The final answer: the last result (JSON text) or the failure.
    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>);
}

struct Entry {
    sink: Box<dyn CallSink>,
    deadline: Instant,
}

/// The table of accepted, unanswered calls of one generation.
#[derive(Default)]
pub struct PendingCalls {
    calls: Mutex<HashMap<u64, Entry>>,
    /// Calls that timed out since the module last answered one: the signal
    /// that an instance is stuck rather than slow.
    timeouts_in_a_row: AtomicU64,
}

impl PendingCalls {
    /// Number of unanswered calls.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether every accepted call has been answered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers call `id`, to be answered by `deadline` at the latest.
    pub fn insert(&self, id: u64, sink: Box<dyn CallSink>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.lock().insert(id, Entry { sink, deadline });
    }

    /// Removes call `id` unanswered (it never reached the module).
    pub fn cancel(&self, id: u64) -> Option<Box<dyn CallSink>> {
        self.lock().remove(&id).map(|e| e.sink)
    }

    /// Delivers a stream item to call `id`, if it is still waiting.
    pub fn item(&self, id: u64, result: &str) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.sink.item(result);
        }
    }

    /// Timeouts since the module last answered a call itself.
    pub fn timeouts_in_a_row(&self) -> u64 {
        self.timeouts_in_a_row.load(Ordering::Relaxed)
    }

    /// Answers call `id` and forgets it. Returns false if it was already
    /// answered (for example it timed out first). Only the module's own
    /// answers come through here, so it also proves the instance is alive.
    pub fn finish(&self, id: u64, outcome: Result<&str, CallFailure>) -> bool {
        let entry = self.lock().remove(&id);
        match entry {
            Some(entry) => {
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                entry.sink.finish(outcome);
                true
            }
            None => false,
        }
    }

    /// Answers every call whose deadline has passed with `module-timeout`.
    /// Returns how many timed out.
    pub fn expire(&self, now: Instant, module: &str) -> usize {
        let expired: Vec<Entry> = {
            let mut calls = self.lock();
            let ids: Vec<u64> = calls
                .iter()
                .filter(|(_, e)| e.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| calls.remove(&id)).collect()
        };
        let count = expired.len();
        if count > 0 {
            self.timeouts_in_a_row
                .fetch_add(count as u64, Ordering::Relaxed);
        }
        for entry in expired {
            entry.sink.finish(Err(CallFailure::new(
                ErrorCode::ModuleTimeout,
                format!("module {module} did not answer in time"),
            )));
        }
        count
    }

    /// Answers every remaining call with `failure` (the generation stopped).
    pub fn fail_all(&self, failure: &CallFailure) -> usize {
        let all: Vec<Entry> = self.lock().drain().map(|(_, e)| e).collect();
        let count = all.len();
        for entry in all {
            entry.sink.finish(Err(failure.clone()));
        }
        count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // Single insert/remove/drain calls: see `sync` for why recovering
        // a poisoned lock is right.
        sync::lock(&self.calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::Record;

    #[test]
    fn a_call_is_answered_exactly_once() {
        let pending = PendingCalls::default();
        let record = Record::default();
        pending.insert(1, Box::new(record.clone()), Duration::from_secs(60));
        pending.item(1, "1");
        assert!(pending.finish(1, Ok("2")));
        assert!(!pending.finish(1, Ok("3")));
        assert_eq!(
            pending.expire(Instant::now() + Duration::from_secs(120), "m"),
            0
        );
        assert_eq!(record.lines(), vec!["item 1", "done 2"]);
    }

    #[test]
    fn expired_calls_time_out_and_late_replies_are_dropped() {
        let pending = PendingCalls::default();
        let record = Record::default();
        pending.insert(7, Box::new(record.clone()), Duration::from_millis(1));
        pending.insert(8, Box::new(record.clone()), Duration::from_secs(60));
        assert_eq!(
            pending.expire(Instant::now() + Duration::from_millis(5), "m"),
            1
        );
        assert!(!pending.finish(7, Ok("late")));
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending.fail_all(&CallFailure::new(ErrorCode::ModuleUnavailable, "stopped")),
            1
        );
        assert_eq!(
            record.lines(),
            vec!["failed module-timeout", "failed module-unavailable"]
        );
    }
}
