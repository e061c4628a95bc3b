//! A session's calls by `requestId`, for exactly-once execution: a repeated
//! `requestId` joins the call still running or gets its stored final
//! frame. Shared with the sinks of the session's calls, and kept across a
//! resume.
//!
//! What a session remembers is bounded twice, because a parked session
//! holds it for the whole grace period whether or not its client returns:
//! - by count: the newest [`REMEMBERED_CALLS`] finished calls. An older
//!   `requestId` is forgotten entirely, and a repeat of it runs again (as
//!   any new call would).
//! - by bytes: the stored final frames of finished calls take at most
//!   [`REMEMBERED_REPLY_BYTES`]. Past that, the oldest frames are dropped
//!   but their `requestId` is kept ([`CallState::Evicted`]): a repeat is
//!   told the call already ran instead of running it a second time. The
//!   ids themselves are bounded by the count and by `MAX_REQUEST_ID_BYTES`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Completed calls whose final reply a session keeps for repeats.
const REMEMBERED_CALLS: usize = 1024;

/// Bytes of final frames a session keeps for repeats: 1,024 replies of
/// 256 bytes, or fewer larger ones. A frame larger than this on its own is
/// not kept at all (its call counts as [`CallState::Evicted`] at once).
pub const REMEMBERED_REPLY_BYTES: usize = 256 * 1024;

/// What a session knows of one call `requestId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// Never seen (or forgotten): run it.
    New,
    /// Running; its reply will arrive, and answers the repeat too.
    Running,
    /// Done; a repeat gets this final frame again.
    Done(String),
    /// Done, but its final frame was dropped to bound the session's
    /// memory: a repeat is refused, not run again.
    Evicted,
}

/// One `requestId`'s record: running (`None`), or done with its final
/// frame, `Some(None)` once the frame was evicted.
type Record = Option<Option<String>>;

#[derive(Default)]
struct CallLog {
    records: HashMap<Arc<str>, Record>,
    /// Finished calls, oldest first.
    done_order: VecDeque<Arc<str>>,
    /// Finished calls whose frame is still kept, oldest first (a suffix of
    /// `done_order`'s ids, in the same order).
    kept_order: VecDeque<Arc<str>>,
    /// Bytes of the kept frames.
    kept_bytes: usize,
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
            Some(Some(Some(frame))) => CallState::Done(frame.clone()),
            Some(Some(None)) => CallState::Evicted,
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

    /// Bytes of final frames kept for repeats.
    pub fn remembered_bytes(&self) -> usize {
        self.lock().kept_bytes
    }

    /// Records a final `frame` for repeats of `request_id`.
    fn remember(&self, request_id: &Arc<str>, frame: String) {
        let mut log = self.lock();
        let log = &mut *log;
        if frame.len() > REMEMBERED_REPLY_BYTES {
            log.records.insert(request_id.clone(), Some(None));
        } else {
            log.kept_bytes += frame.len();
            log.records.insert(request_id.clone(), Some(Some(frame)));
            log.kept_order.push_back(request_id.clone());
        }
        log.done_order.push_back(request_id.clone());
        while log.kept_bytes > REMEMBERED_REPLY_BYTES {
            let Some(old) = log.kept_order.pop_front() else {
                break;
            };
            if let Some(Some(frame)) = log.records.get_mut(&old) {
                log.kept_bytes -= frame.as_ref().map_or(0, String::len);
                *frame = None;
            }
        }
        while log.done_order.len() > REMEMBERED_CALLS {
            if let Some(old) = log.done_order.pop_front()
                && let Some(Some(Some(frame))) = log.records.remove(&old)
            {
                log.kept_bytes -= frame.len();
                // Still kept, so it is the oldest kept one.
                log.kept_order.pop_front();
            }
        }
    }

    /// What a session hands to another host (`handover`): its finished
    /// calls oldest first, each with its final frame or `None` once
    /// evicted, then its running calls as `None` (their reply goes to
    /// this host, which no longer has the session, so a repeat is refused
    /// rather than run twice).
    pub fn export(&self) -> Vec<(String, Option<String>)> {
        let log = self.lock();
        let done = log
            .done_order
            .iter()
            .filter_map(|id| match log.records.get(id) {
                Some(Some(frame)) => Some((id.to_string(), frame.clone())),
                _ => None,
            });
        let running = log
            .records
            .iter()
            .filter(|(_, record)| record.is_none())
            .map(|(id, _)| (id.to_string(), None));
        done.chain(running).collect()
    }

    /// Remembers calls `export`ed by another host, in order, within this
    /// log's bounds (an older one past them is forgotten as any would be).
    pub fn import(&self, calls: Vec<(String, Option<String>)>) {
        for (id, frame) in calls {
            let id: Arc<str> = id.into();
            match frame {
                Some(frame) => self.remember(&id, frame),
                None => self.remember_evicted(&id),
            }
        }
    }

    /// Records `request_id` as done with its frame already dropped.
    fn remember_evicted(&self, request_id: &Arc<str>) {
        let mut log = self.lock();
        log.records.insert(request_id.clone(), Some(None));
        log.done_order.push_back(request_id.clone());
        while log.done_order.len() > REMEMBERED_CALLS {
            if let Some(old) = log.done_order.pop_front()
                && let Some(Some(Some(frame))) = log.records.remove(&old)
            {
                log.kept_bytes -= frame.len();
                log.kept_order.pop_front();
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

    #[test]
    fn frames_past_the_byte_budget_are_dropped_oldest_first_and_their_ids_refuse_repeats() {
        let calls = SessionCalls::default();
        let frame = "x".repeat(REMEMBERED_REPLY_BYTES / 4);
        for i in 0..6 {
            calls.remember(&Arc::from(i.to_string()), frame.clone());
        }
        assert!(calls.remembered_bytes() <= REMEMBERED_REPLY_BYTES);
        assert_eq!(calls.state("0"), CallState::Evicted);
        assert_eq!(calls.state("1"), CallState::Evicted);
        assert_eq!(calls.state("2"), CallState::Done(frame.clone()));
        assert_eq!(calls.state("5"), CallState::Done(frame));
        // A frame over the whole budget is never kept, nor does it push
        // out the others.
        calls.remember(&Arc::from("huge"), "y".repeat(REMEMBERED_REPLY_BYTES + 1));
        assert_eq!(calls.state("huge"), CallState::Evicted);
        assert!(matches!(calls.state("2"), CallState::Done(_)));
    }

    #[test]
    fn an_exported_log_imported_elsewhere_answers_the_same_repeats() {
        let calls = SessionCalls::default();
        for id in ["done", "gone", "running"] {
            calls.start(&Arc::from(id));
        }
        calls.finish(&Arc::from("gone"), "y".repeat(REMEMBERED_REPLY_BYTES + 1));
        calls.finish(&Arc::from("done"), "final".into());
        let moved = SessionCalls::default();
        moved.import(calls.export());
        assert_eq!(moved.state("done"), CallState::Done("final".into()));
        assert_eq!(moved.state("gone"), CallState::Evicted);
        assert_eq!(moved.state("running"), CallState::Evicted);
        assert_eq!(moved.state("never"), CallState::New);
        assert_eq!(moved.in_flight(), 0);
    }

    #[test]
    fn forgetting_by_count_also_frees_the_bytes_of_kept_frames() {
        let calls = SessionCalls::default();
        for i in 0..REMEMBERED_CALLS * 3 {
            calls.remember(&Arc::from(i.to_string()), "z".repeat(100));
        }
        assert_eq!(calls.remembered_bytes(), REMEMBERED_CALLS * 100);
        assert_eq!(calls.state("0"), CallState::New);
        let newest = (REMEMBERED_CALLS * 3 - 1).to_string();
        assert_eq!(calls.state(&newest), CallState::Done("z".repeat(100)));
    }
}
