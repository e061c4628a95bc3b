//! A session's calls by `requestId`, for exactly-once execution: a repeated
//! `requestId` joins the call still running or gets its stored final
//! frame. Shared with the sinks of the session's calls, and kept across a
//! resume.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Completed calls whose final reply a session keeps for repeats.
const REMEMBERED_CALLS: usize = 1024;

/// What a session knows of one call `requestId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// Never seen (or forgotten): run it.
    New,
    /// Running; its reply will arrive, and answers the repeat too.
    Running,
    /// Done; a repeat gets this final frame again.
    Done(String),
}

#[derive(Default)]
struct CallLog {
    records: HashMap<Arc<str>, Option<String>>,
    done_order: VecDeque<Arc<str>>,
}

/// Calls of one session, shared between the session and its call sinks.
#[derive(Default)]
pub struct SessionCalls {
    log: Mutex<CallLog>,
    in_flight: AtomicUsize,
}

impl SessionCalls {
    /// What is known of `request_id`.
    pub fn state(&self, request_id: &str) -> CallState {
        match self.lock().records.get(request_id) {
            None => CallState::New,
            Some(None) => CallState::Running,
            Some(Some(frame)) => CallState::Done(frame.clone()),
        }
    }

    /// Records `request_id` as running (a reply is owed).
    pub fn start(&self, request_id: &Arc<str>) {
        self.lock().records.insert(request_id.clone(), None);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Records the final `frame` of a call started with [`start`](Self::start).
    pub fn finish(&self, request_id: &Arc<str>, frame: String) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.remember(request_id, frame);
    }

    /// Records a final `frame` for repeats of `request_id`.
    fn remember(&self, request_id: &Arc<str>, frame: String) {
        let mut log = self.lock();
        log.records.insert(request_id.clone(), Some(frame));
        log.done_order.push_back(request_id.clone());
        while log.done_order.len() > REMEMBERED_CALLS {
            if let Some(old) = log.done_order.pop_front() {
                log.records.remove(&old);
            }
        }
    }

    /// Calls started and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CallLog> {
        crate::util::sync::lock(&self.log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_runs_once_and_its_final_frame_answers_repeats() {
        let calls = SessionCalls::default();
        let id: Arc<str> = Arc::from("7");
        assert_eq!(calls.state("7"), CallState::New);
        calls.start(&id);
        assert_eq!(
            (calls.state("7"), calls.in_flight()),
            (CallState::Running, 1)
        );
        calls.finish(&id, "final".into());
        assert_eq!(calls.state("7"), CallState::Done("final".into()));
        assert_eq!(calls.in_flight(), 0);
    }

    #[test]
    fn only_the_newest_finished_calls_are_remembered() {
        let calls = SessionCalls::default();
        for i in 0..REMEMBERED_CALLS + 1 {
            calls.remember(&Arc::from(i.to_string()), i.to_string());
        }
        assert_eq!(calls.state("0"), CallState::New);
        assert_eq!(calls.state("1"), CallState::Done("1".into()));
    }
}
