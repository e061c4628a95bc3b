//! Calls to modules on other hosts: the endpoint the broker dispatches
//! to, and the table of calls waiting for their answers.
//!
//! A call is one NATS message to `<prefix>.call.<module>` (a queue group:
//! one serving host gets it) with the reply subject
//! `<prefix>.inbox.<host>.<id>`. This host listens on its whole inbox
//! with one subscription; the id in the subject finds the call. Answers
//! (stream items, then the reply or the error) come back there in the
//! order the serving host sent them.
//!
//! The endpoint contract holds here as for a local module: the table
//! ([`PendingCalls`]) times a call out (`module-timeout`, at the serving
//! host's timeout for the module and a margin, so its own timeout answer
//! normally arrives first), a lost link or a module no host serves any
//! more answers `module-unavailable`, and NATS's "no responders" answers
//! at once when the module left between the announcement and the call.
//! A call is sent once and never retried: a retry could run a command
//! twice on the serving host.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use modhost_plugin_api::{ErrorCode, Manifest};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::{
    stats::CallStats,
    wire::{AnswerIn, Kind, RequestOut, WireCaller, failure},
};
use crate::{
    broker::{ModuleEndpoint, StampedCall},
    modules::{Admission, CallFailure, CallSink, PendingCalls},
    util::sync::lock,
};

/// Calls this host may have waiting on other hosts at once; past it a
/// call is refused as busy rather than queued without end.
pub(super) const MAX_IN_FLIGHT: usize = 4096;
/// Added to the serving host's timeout: its `module-timeout` answer has
/// this long to arrive before this host gives the same answer itself.
const MARGIN: Duration = Duration::from_millis(500);
/// Requests waiting for the connection; past it calls are refused as busy.
const SEND_QUEUE: usize = 4096;

/// A message for the publisher task: subject, reply subject, body.
pub(super) type Outgoing = (String, Option<String>, Bytes);

/// Calls sent and not yet answered.
pub(super) struct RemoteCalls {
    pending: PendingCalls,
    /// The module of each waiting call, to fail the calls of a module no
    /// host serves any more.
    modules: Mutex<HashMap<u64, Arc<str>>>,
    /// `<prefix>.inbox.<host>`: each call's reply subject adds its id.
    inbox: String,
    /// `<prefix>.call`: a module's subject adds its name.
    calls: String,
    outbox: mpsc::Sender<Outgoing>,
    /// Answers larger than this are refused (the host's `max_frame_bytes`,
    /// set when the host is built and at each reload).
    max_answer: AtomicUsize,
    stats: Arc<CallStats>,
    me: Weak<RemoteCalls>,
}

impl RemoteCalls {
    pub(super) fn new(
        prefix: &str,
        host: &str,
        max_answer: usize,
        stats: Arc<CallStats>,
    ) -> (Arc<Self>, mpsc::Receiver<Outgoing>) {
        let (outbox, to_send) = mpsc::channel(SEND_QUEUE);
        let calls = Arc::new_cyclic(|me| Self {
            pending: PendingCalls::default(),
            modules: Mutex::default(),
            inbox: format!("{prefix}.inbox.{host}"),
            calls: format!("{prefix}.call"),
            outbox,
            max_answer: max_answer.into(),
            stats,
            me: me.clone(),
        });
        (calls, to_send)
    }

    /// The subject this host's inbox subscription listens on.
    pub(super) fn inbox_subject(&self) -> String {
        format!("{}.>", self.inbox)
    }

    /// The publisher's queue, which the serving side's answers share.
    pub(super) fn outbox(&self) -> mpsc::Sender<Outgoing> {
        self.outbox.clone()
    }

    pub(super) fn set_max_answer(&self, bytes: usize) {
        self.max_answer.store(bytes, Ordering::Relaxed);
    }

    /// Calls waiting for an answer.
    pub(super) fn in_flight(&self) -> usize {
        self.pending.len()
    }

    fn send(&self, call: StampedCall<'_>, timeout: Duration, sink: Box<dyn CallSink>) -> Admission {
        if !self.stats.is_connected() {
            return Admission::Rejected(
                sink,
                unavailable(format!(
                    "module {} runs on another host and the cluster link is down; try again",
                    call.module
                )),
            );
        }
        if self.pending.len() >= MAX_IN_FLIGHT {
            return self.busy(call.module, sink);
        }
        let Ok(params) = serde_json::from_str::<&RawValue>(call.params) else {
            // The broker checked the params are a JSON object.
            return Admission::Rejected(
                sink,
                CallFailure::new(ErrorCode::MissingParam, "params must be a JSON object"),
            );
        };
        let request = RequestOut {
            module: call.module,
            command: call.command,
            params,
            caller: WireCaller::from(&call.caller),
            rooms: call
                .user
                .as_ref()
                .map(|u| u.allowed_rooms.iter().map(|r| r.to_json()).collect()),
        };
        let body = match serde_json::to_vec(&request) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                return Admission::Rejected(
                    sink,
                    unavailable(format!("the call could not be encoded ({e})")),
                );
            }
        };
        let id = call.id;
        let module: Arc<str> = call.module.into();
        lock(&self.modules).insert(id, module.clone());
        let tracked = Tracked {
            inner: sink,
            id,
            calls: self.me.clone(),
        };
        self.pending.insert(id, Box::new(tracked), timeout + MARGIN);
        let outgoing = (
            format!("{}.{module}", self.calls),
            Some(format!("{}.{id}", self.inbox)),
            body,
        );
        if self.outbox.try_send(outgoing).is_err() {
            // Not sent: nothing can answer it but us.
            if let Some(tracked) = self.pending.cancel(id) {
                lock(&self.modules).remove(&id);
                return self.busy(&module, tracked);
            }
            return Admission::Accepted;
        }
        self.stats.sent();
        Admission::Accepted
    }

    fn busy(&self, module: &str, sink: Box<dyn CallSink>) -> Admission {
        self.stats.failed();
        Admission::Rejected(
            sink,
            unavailable(format!(
                "module {module} is busy: {MAX_IN_FLIGHT} calls to other hosts are waiting; try again"
            )),
        )
    }

    /// An answer on the inbox subject ending in `id`. `no_responders`:
    /// NATS found no host listening on the module's subject.
    pub(super) fn answer(&self, id: &str, payload: &[u8], no_responders: bool) {
        let Ok(id) = id.parse::<u64>() else {
            return;
        };
        if no_responders {
            let module = lock(&self.modules).get(&id).cloned();
            if let Some(module) = module {
                self.fail(id, format!("no host serves module {module} now; try again"));
            }
            return;
        }
        let max = self.max_answer.load(Ordering::Relaxed);
        if payload.len() > max.saturating_add(256) {
            self.pending.finish(
                id,
                Err(CallFailure::new(
                    ErrorCode::TooLarge,
                    format!("the answer from another host is larger than max_frame_bytes ({max})"),
                )),
            );
            return;
        }
        let answer = match serde_json::from_slice::<AnswerIn>(payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cluster: dropped an answer that does not parse ({e})");
                return;
            }
        };
        match (answer.k, answer.r) {
            (Kind::Item, Some(r)) => self.pending.item(id, r.get()),
            (Kind::Ok, Some(r)) => {
                self.pending.finish(id, Ok(r.get()));
            }
            (Kind::Err, _) => {
                let (code, message) = (answer.code.unwrap_or_default(), answer.message);
                self.pending
                    .finish(id, Err(failure(&code, message.unwrap_or_default())));
            }
            (_, None) => tracing::warn!("cluster: dropped an answer without its result"),
        }
    }

    /// Answers calls past their deadline with `module-timeout`.
    pub(super) fn expire(&self, now: Instant) {
        // `PendingCalls` names one module per sweep; these are many.
        for _ in 0..self.pending.expire(now, "(on another host)") {
            self.stats.failed();
        }
    }

    /// Answers every waiting call with `module-unavailable` (the link is
    /// lost: their answers may never come).
    pub(super) fn fail_all(&self, why: &str) {
        let n = self.pending.fail_all(&unavailable(why.to_owned()));
        for _ in 0..n {
            self.stats.failed();
        }
    }

    /// Answers the waiting calls to modules `gone` says no host serves.
    pub(super) fn fail_modules(&self, gone: impl Fn(&str) -> bool) {
        let ids: Vec<(u64, Arc<str>)> = lock(&self.modules)
            .iter()
            .filter(|(_, m)| gone(m))
            .map(|(id, m)| (*id, m.clone()))
            .collect();
        for (id, module) in ids {
            self.fail(
                id,
                format!("the host serving module {module} left the cluster"),
            );
        }
    }

    fn fail(&self, id: u64, message: String) {
        if self.pending.finish(id, Err(unavailable(message))) {
            self.stats.failed();
        }
    }
}

fn unavailable(message: String) -> CallFailure {
    CallFailure::new(ErrorCode::ModuleUnavailable, message)
}

/// A waiting call's sink: forgets the call's module when it is answered,
/// whoever answers it.
struct Tracked {
    inner: Box<dyn CallSink>,
    id: u64,
    calls: Weak<RemoteCalls>,
}

impl CallSink for Tracked {
    fn item(&mut self, result: &str) {
        self.inner.item(result);
    }

    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        if let Some(calls) = self.calls.upgrade() {
            lock(&calls.modules).remove(&self.id);
        }
        self.inner.finish(outcome);
    }
}

/// A module another host announced.
pub(super) struct RemoteEndpoint {
    manifest: Manifest,
    /// The serving host's timeout for the module.
    timeout: Duration,
    calls: Arc<RemoteCalls>,
}

impl RemoteEndpoint {
    pub(super) fn new(manifest: Manifest, timeout: Duration, calls: Arc<RemoteCalls>) -> Self {
        Self {
            manifest,
            timeout,
            calls,
        }
    }

    /// Whether an announcement says the same as the one this came from.
    pub(super) fn same(&self, manifest: &Manifest, timeout: Duration) -> bool {
        self.manifest == *manifest && self.timeout == timeout
    }
}

impl ModuleEndpoint for RemoteEndpoint {
    fn name(&self) -> &str {
        &self.manifest.name
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn dispatch(&self, call: StampedCall<'_>, sink: Box<dyn CallSink>) -> Admission {
        self.calls.send(call, self.timeout, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{Record, operator_call as call};

    fn calls(max_answer: usize) -> (Arc<RemoteCalls>, Arc<CallStats>, mpsc::Receiver<Outgoing>) {
        let stats = Arc::new(CallStats::default());
        stats.set_connected(true);
        let (calls, queue) = RemoteCalls::new("p", "a", max_answer, stats.clone());
        (calls, stats, queue)
    }

    fn rejected(admission: Admission) -> CallFailure {
        match admission {
            Admission::Rejected(_, failure) => failure,
            _ => panic!("not rejected"),
        }
    }

    #[test]
    fn a_call_goes_out_once_on_the_modules_subject_and_its_answers_come_back() {
        let (calls, stats, mut queue) = calls(1000);
        let record = Record::default();
        let sent = calls.send(call(7), Duration::from_secs(5), Box::new(record.clone()));
        assert!(matches!(sent, Admission::Accepted));
        let (subject, reply, _) = queue.try_recv().unwrap();
        assert_eq!(subject, "p.call.echo");
        assert_eq!(reply.as_deref(), Some("p.inbox.a.7"));
        assert!(queue.try_recv().is_err(), "sent once");
        calls.answer("7", br#"{"k":"item","r":{"i":1}}"#, false);
        calls.answer("7", br#"{"k":"ok","r":{"i":2}}"#, false);
        calls.answer("7", br#"{"k":"ok","r":{"i":3}}"#, false);
        assert_eq!(record.lines(), vec![r#"item {"i":1}"#, r#"done {"i":2}"#]);
        assert_eq!(calls.in_flight(), 0);
        assert_eq!(stats.report(0, 0, (0, 0)).sent, 1);
    }

    #[test]
    fn no_responders_an_oversized_answer_and_a_lost_link_answer_at_once() {
        let (calls, stats, _queue) = calls(16);
        let records: Vec<Record> = (0..3).map(|_| Record::default()).collect();
        for (id, record) in records.iter().enumerate() {
            let sink = Box::new(record.clone());
            assert!(matches!(
                calls.send(call(id as u64), Duration::from_secs(5), sink),
                Admission::Accepted
            ));
        }
        calls.answer("0", b"", true);
        let big = format!(r#"{{"k":"ok","r":"{}"}}"#, "x".repeat(400));
        calls.answer("1", big.as_bytes(), false);
        calls.fail_all("lost");
        let codes: Vec<Vec<String>> = records.iter().map(Record::lines).collect();
        assert_eq!(
            codes,
            vec![
                vec!["failed module-unavailable"],
                vec!["failed too-large"],
                vec!["failed module-unavailable"]
            ]
        );
        assert_eq!(stats.report(0, 0, (0, 0)).failed, 2);
        // Disconnected: refused before anything is sent.
        stats.set_connected(false);
        let failure =
            rejected(calls.send(call(9), Duration::from_secs(5), Box::new(Record::default())));
        assert_eq!(failure.code, ErrorCode::ModuleUnavailable);
    }

    #[test]
    fn calls_in_flight_are_bounded_and_time_out() {
        let (calls, _stats, _queue) = calls(1000);
        let record = Record::default();
        for id in 0..MAX_IN_FLIGHT as u64 {
            let sink = Box::new(record.clone());
            assert!(matches!(
                calls.send(call(id), Duration::ZERO, sink),
                Admission::Accepted
            ));
        }
        let failure =
            rejected(calls.send(call(u64::MAX), Duration::ZERO, Box::new(Record::default())));
        assert_eq!(failure.code, ErrorCode::ModuleUnavailable);
        assert!(failure.message.contains("busy"), "{failure}");
        calls.expire(Instant::now() + MARGIN + Duration::from_millis(1));
        assert_eq!(calls.in_flight(), 0);
        let log = record.lines();
        assert_eq!(log.len(), MAX_IN_FLIGHT);
        assert!(log.iter().all(|l| l == "failed module-timeout"));
    }
}
