//! The broker against fake endpoints (no library is loaded): every refusal,
//! every admission outcome, the retry across a swap, and that each call's
//! sink is built once and answered once on every path.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use modhost_plugin_api::{Caller, CallerKind, CommandSpec, ErrorCode, Manifest};

use super::*;
use crate::{auth::Principal, modules::CallContext};

/// What a fake endpoint does with the next call it is offered.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Keeps the sink (the test answers it through [`Fake::answer`]).
    Accept,
    /// Its queue is full.
    Full,
    /// It stopped answering.
    Degraded,
    /// It is being swapped out.
    Stopping,
}

/// An endpoint with a scripted answer per call (the last one repeats).
struct Fake {
    manifest: Manifest,
    script: Mutex<VecDeque<Behaviour>>,
    calls: Mutex<Vec<(u64, String, String, Caller)>>,
    held: Mutex<Vec<Box<dyn CallSink>>>,
}

impl Fake {
    fn new(manifest: Manifest, script: &[Behaviour]) -> Arc<Self> {
        Arc::new(Self {
            manifest,
            script: Mutex::new(script.iter().copied().collect()),
            calls: Mutex::default(),
            held: Mutex::default(),
        })
    }

    fn next(&self) -> Behaviour {
        let mut script = self.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script[0]
        }
    }

    /// Answers every call it holds, as a module would.
    fn answer(&self, outcome: Result<&str, CallFailure>) {
        for sink in self.held.lock().unwrap().drain(..) {
            sink.finish(outcome.clone());
        }
    }

    fn calls(&self) -> Vec<(u64, String, String, Caller)> {
        self.calls.lock().unwrap().clone()
    }
}

impl ModuleEndpoint for Fake {
    fn name(&self) -> &str {
        &self.manifest.name
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn dispatch(&self, call: StampedCall<'_>, sink: Box<dyn CallSink>) -> Admission {
        let unavailable = |why: &str| CallFailure::new(ErrorCode::ModuleUnavailable, why);
        match self.next() {
            Behaviour::Accept => {
                self.calls.lock().unwrap().push((
                    call.id,
                    call.command.to_owned(),
                    call.params.to_owned(),
                    call.caller,
                ));
                self.held.lock().unwrap().push(sink);
                Admission::Accepted
            }
            Behaviour::Full => Admission::Rejected(sink, unavailable("busy")),
            Behaviour::Degraded => Admission::Rejected(sink, unavailable("degraded")),
            Behaviour::Stopping => Admission::Stopping(sink),
        }
    }
}

/// A source whose endpoints a test can swap and remove.
#[derive(Default)]
struct Table(Mutex<HashMap<String, Arc<Fake>>>);

impl Table {
    fn put(&self, fake: &Arc<Fake>) {
        let name = fake.manifest.name.to_string();
        self.0.lock().unwrap().insert(name, fake.clone());
    }
}

impl EndpointSource for Table {
    fn resolve(&self, module: &str) -> Option<Arc<dyn ModuleEndpoint>> {
        let fake = self.0.lock().unwrap().get(module).cloned()?;
        Some(fake)
    }
}

/// Records what reached a sink; notices a sink dropped unanswered.
struct Probe {
    log: Arc<Mutex<Vec<String>>>,
    answered: bool,
}

impl CallSink for Probe {
    fn item(&mut self, result: &str) {
        self.log.lock().unwrap().push(format!("item {result}"));
    }

    fn finish(mut self: Box<Self>, outcome: Result<&str, CallFailure>) {
        self.answered = true;
        let line = match outcome {
            Ok(r) => format!("done {r}"),
            Err(f) => format!("failed {} {}", f.code, f.message),
        };
        self.log.lock().unwrap().push(line);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.answered {
            self.log.lock().unwrap().push("dropped unanswered".into());
        }
    }
}

/// One call through the broker: what the sink factory was told each time
/// it ran, and everything its sink received.
struct Outcome {
    dispatched: Dispatched,
    built: Vec<CommandInfo>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Outcome {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The sink was built once and holds exactly one final answer, which
    /// starts with `prefix`.
    fn answered_once(&self, prefix: &str) {
        assert_eq!(self.built.len(), 1, "sink built {:?}", self.built);
        let finals: Vec<String> = self
            .log()
            .into_iter()
            .filter(|l| !l.starts_with("item "))
            .collect();
        assert_eq!(finals.len(), 1, "answers: {finals:?}");
        assert!(finals[0].starts_with(prefix), "answer: {finals:?}");
    }
}

fn call(broker: &Broker, req: CallRequest<'_>) -> Outcome {
    through(req, |req, make| broker.call(req, make))
}

/// As [`call`], for a call another host sent.
fn call_from_host(broker: &Broker, req: CallRequest<'_>) -> Outcome {
    through(req, |req, make| broker.call_from_host(req, make))
}

type MakeSink<'s> = &'s mut dyn FnMut(&CommandInfo) -> Box<dyn CallSink>;

fn through<'a>(
    req: CallRequest<'a>,
    via: impl FnOnce(CallRequest<'a>, MakeSink<'_>) -> Dispatched,
) -> Outcome {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut built = Vec::new();
    let sink_log = log.clone();
    let dispatched = via(req, &mut |info| {
        built.push(*info);
        Box::new(Probe {
            log: sink_log.clone(),
            answered: false,
        })
    });
    Outcome {
        dispatched,
        built,
        log,
    }
}

fn notes() -> Manifest {
    Manifest::new("notes", "1.0.0")
        .command(CommandSpec::new("write_note").param("note"))
        .command(CommandSpec::new("purge").min_role("admin"))
        .command(CommandSpec::new("fire").no_reply())
        .command(CommandSpec::new("tail").streams())
}

fn alice(roles: &[&str]) -> Principal {
    Principal {
        user: "alice".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        allowed_rooms: Vec::new(),
        source: crate::auth::Source::Bootstrap,
    }
}

fn user<'a>(command: &'a str, params: Option<&'a str>) -> CallRequest<'a> {
    by(&alice(&["user"]), command, params)
}

fn by<'a>(principal: &Principal, command: &'a str, params: Option<&'a str>) -> CallRequest<'a> {
    CallRequest::by_user(principal, Vec::new().into(), "s1", "notes", command, params)
}

/// The call a module is handling for `principal`.
fn handling_for(principal: &Principal) -> CallContext {
    let req = by(principal, "purge", None);
    CallContext {
        caller: req.caller,
        user: req.user,
        admin_command: false,
    }
}

fn broker_with(fake: &Arc<Fake>, max_params: usize) -> (Broker, Arc<Table>) {
    let table = Arc::new(Table::default());
    table.put(fake);
    let broker = Broker::with_endpoints(Endpoints::new(table.clone()), max_params);
    (broker, table)
}

fn refused(out: &Outcome, code: ErrorCode) {
    assert_eq!(out.dispatched, Dispatched::Refused);
    out.answered_once(&format!("failed {code}"));
}

#[test]
fn refusals_by_the_checks_answer_the_sink_once_and_never_reach_the_endpoint() {
    let fake = Fake::new(notes(), &[Behaviour::Accept]);
    let (broker, _) = broker_with(&fake, 32);
    let ghost = CallRequest::by_user(&alice(&[]), Vec::new().into(), "s1", "ghost", "x", None);
    let cases = [
        (call(&broker, ghost), ErrorCode::UnknownModule),
        (call(&broker, user("nope", None)), ErrorCode::UnknownCommand),
        (
            call(&broker, user("write_note", None)),
            ErrorCode::MissingParam,
        ),
        (
            call(&broker, user("write_note", Some(r#"{"not":1}"#))),
            ErrorCode::MissingParam,
        ),
        (call(&broker, user("purge", None)), ErrorCode::Forbidden),
        (
            call(
                &broker,
                user(
                    "write_note",
                    Some(&format!(r#"{{"note":"{}"}}"#, "x".repeat(40))),
                ),
            ),
            ErrorCode::TooLarge,
        ),
    ];
    for (out, code) in &cases {
        refused(out, *code);
        // A refused call is one answer, the error; never a stream or an ack.
        assert_eq!(out.built, vec![REFUSED]);
    }
    assert!(fake.calls().is_empty());
    assert_eq!(
        cases[0].0.log(),
        vec![r#"failed unknown-module no module named "ghost" is loaded"#]
    );
}

#[test]
fn an_accepted_call_is_answered_once_by_the_endpoint() {
    let fake = Fake::new(notes(), &[Behaviour::Accept]);
    let (broker, _) = broker_with(&fake, 1000);
    let out = call(&broker, user("tail", None));
    let info = CommandInfo {
        needs_reply: true,
        streams: true,
    };
    assert_eq!(out.dispatched, Dispatched::Accepted(info));
    assert_eq!(out.built, vec![info]);
    // Not answered yet: the endpoint holds the sink.
    assert!(out.log().is_empty());
    fake.answer(Ok("1"));
    out.answered_once("done 1");
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].1.as_str(), calls[0].2.as_str()), ("tail", "{}"));
}

#[test]
fn the_caller_is_stamped_by_the_host() {
    let fake = Fake::new(notes(), &[Behaviour::Accept]);
    let (broker, _) = broker_with(&fake, 1000);
    let params = r#"{"note":"x","user":"mallory","roles":["admin"]}"#;
    call(&broker, user("write_note", Some(params)));
    let for_admin = handling_for(&alice(&["admin"]));
    call(
        &broker,
        CallRequest::by_module("relay", Some(&for_admin), "notes", "purge", "{}"),
    );
    call(&broker, CallRequest::by_operator("notes", "purge", None));
    let callers: Vec<Caller> = fake.calls().into_iter().map(|c| c.3).collect();
    assert_eq!(
        callers.len(),
        3,
        "an admin through a module, and the operator"
    );
    let (u, m, o) = (&callers[0], &callers[1], &callers[2]);
    assert_eq!(u.kind, CallerKind::User);
    assert_eq!((u.user.as_str(), u.session.as_str()), ("alice", "s1"));
    assert!(u.has_role("user") && !u.has_role("admin"));
    // The callee sees the calling module and the user it calls for.
    assert_eq!((m.kind, m.module.as_str()), (CallerKind::Module, "relay"));
    assert_eq!((m.user.as_str(), m.session.as_str()), ("alice", "s1"));
    assert!(m.has_role("admin"));
    assert_eq!(o.kind, CallerKind::Operator);
    assert!(o.has_role("admin"));
    fake.answer(Ok("null"));
}

#[test]
fn a_module_call_is_held_to_the_roles_of_the_user_it_calls_for() {
    let fake = Fake::new(notes(), &[Behaviour::Accept]);
    let (broker, _) = broker_with(&fake, 1000);
    let direct = call(&broker, user("purge", None));
    refused(&direct, ErrorCode::Forbidden);
    let for_user = handling_for(&alice(&["user"]));
    // For a plain user, and on the module's own behalf (no roles at all).
    for on_behalf in [Some(&for_user), None] {
        let out = call(
            &broker,
            CallRequest::by_module("relay", on_behalf, "notes", "purge", "{}"),
        );
        refused(&out, ErrorCode::Forbidden);
    }
    // What needs no role is still reachable on the module's own behalf.
    let own = call(
        &broker,
        CallRequest::by_module("relay", None, "notes", "fire", "{}"),
    );
    assert!(matches!(own.dispatched, Dispatched::Accepted(_)));
    assert!(fake.calls().iter().all(|c| c.1 != "purge"));
}

#[test]
fn a_full_or_degraded_endpoint_gets_its_refusal_answered_by_the_broker() {
    for behaviour in [Behaviour::Full, Behaviour::Degraded] {
        let fake = Fake::new(notes(), &[behaviour]);
        let (broker, _) = broker_with(&fake, 1000);
        let out = call(&broker, user("tail", None));
        refused(&out, ErrorCode::ModuleUnavailable);
        assert!(fake.calls().is_empty());
    }
}

#[test]
fn a_fire_and_forget_command_gets_its_own_sink_shape() {
    let fake = Fake::new(notes(), &[Behaviour::Accept]);
    let (broker, _) = broker_with(&fake, 1000);
    let out = call(&broker, user("fire", None));
    let info = CommandInfo {
        needs_reply: false,
        streams: false,
    };
    assert_eq!(out.dispatched, Dispatched::Accepted(info));
    assert_eq!(out.built, vec![info]);
    fake.answer(Ok("null"));
    out.answered_once("done null");
}

#[test]
fn a_call_follows_a_swap_to_the_successor() {
    let old = Fake::new(notes(), &[Behaviour::Stopping]);
    let new = Fake::new(notes(), &[Behaviour::Accept]);
    let broker = Broker::with_endpoints(Endpoints::new(Swap::new(&old, &new)), 1000);
    let out = call(&broker, user("tail", None));
    assert!(matches!(out.dispatched, Dispatched::Accepted(_)));
    assert_eq!((old.calls().len(), new.calls().len()), (0, 1));
    new.answer(Ok("2"));
    out.answered_once("done 2");
}

/// Resolves to what it holds, then swaps in `next`: a registry that
/// installed a new build right after the first lookup.
struct Swap {
    table: Table,
    next: Arc<Fake>,
}

impl Swap {
    fn new(old: &Arc<Fake>, next: &Arc<Fake>) -> Arc<Self> {
        let table = Table::default();
        table.put(old);
        Arc::new(Self {
            table,
            next: next.clone(),
        })
    }
}

impl EndpointSource for Swap {
    fn resolve(&self, module: &str) -> Option<Arc<dyn ModuleEndpoint>> {
        let found = self.table.resolve(module);
        self.table.put(&self.next);
        found
    }
}

#[test]
fn a_successor_is_checked_again() {
    let old = Fake::new(notes(), &[Behaviour::Stopping]);
    let stricter = Manifest::new("notes", "2.0.0")
        .command(CommandSpec::new("tail").streams().min_role("admin"));
    let new = Fake::new(stricter, &[Behaviour::Accept]);
    let broker = Broker::with_endpoints(Endpoints::new(Swap::new(&old, &new)), 1000);
    let out = call(&broker, user("tail", None));
    refused(&out, ErrorCode::Forbidden);
    assert!(new.calls().is_empty());
}

#[test]
fn a_module_swapping_forever_or_removed_is_answered_once() {
    let stuck = Fake::new(notes(), &[Behaviour::Stopping]);
    let (broker, _) = broker_with(&stuck, 1000);
    let out = call(&broker, user("tail", None));
    refused(&out, ErrorCode::ModuleUnavailable);
    assert_eq!(stuck.calls().len(), 0);
    assert!(out.log()[0].ends_with("is being replaced; try again"));

    let leaving = Fake::new(notes(), &[Behaviour::Stopping]);
    let once = Arc::new(Once(Table::default()));
    once.0.put(&leaving);
    let broker = Broker::with_endpoints(Endpoints::new(once), 1000);
    let out = call(&broker, user("tail", None));
    refused(&out, ErrorCode::UnknownModule);
    assert!(out.log()[0].ends_with(r#"module "notes" was removed"#));
}

/// Hands out each endpoint once: the module is removed between the first
/// lookup and the retry.
struct Once(Table);

impl EndpointSource for Once {
    fn resolve(&self, module: &str) -> Option<Arc<dyn ModuleEndpoint>> {
        let fake = (self.0).0.lock().unwrap().remove(module)?;
        Some(fake)
    }
}

#[test]
fn sources_are_asked_in_order() {
    let local = Fake::new(notes(), &[Behaviour::Accept]);
    let remote = Fake::new(notes(), &[Behaviour::Accept]);
    let other = Fake::new(
        Manifest::new("other", "1.0.0").command(CommandSpec::new("x")),
        &[Behaviour::Accept],
    );
    let (first, second) = (Arc::new(Table::default()), Arc::new(Table::default()));
    first.put(&local);
    second.put(&remote);
    second.put(&other);
    let broker = Broker::with_endpoints(Endpoints::new(first).with(second), 1000);
    call(&broker, user("tail", None));
    call(&broker, CallRequest::by_operator("other", "x", None));
    assert_eq!(local.calls().len(), 1, "the first source wins a name");
    assert!(remote.calls().is_empty());
    assert_eq!(other.calls().len(), 1);
    for fake in [local, other] {
        fake.answer(Ok("null"));
    }
}

#[test]
fn other_hosts_serve_only_what_this_one_lacks_and_never_a_call_from_a_host() {
    let here = Fake::new(notes(), &[Behaviour::Accept]);
    let there = Fake::new(notes(), &[Behaviour::Accept]);
    let only_there = Fake::new(
        Manifest::new("other", "1.0.0").command(CommandSpec::new("x")),
        &[Behaviour::Accept],
    );
    let (local, remote) = (Arc::new(Table::default()), Arc::new(Table::default()));
    local.put(&here);
    remote.put(&there);
    remote.put(&only_there);
    let broker = Broker::with_endpoints(Endpoints::new(local).with_remote(remote), 1000);
    call(&broker, user("tail", None));
    call(&broker, CallRequest::by_operator("other", "x", None));
    assert_eq!(
        here.calls().len(),
        1,
        "a module this host has is called here"
    );
    assert!(there.calls().is_empty());
    assert_eq!(only_there.calls().len(), 1);
    // A call another host sent here never travels on.
    let out = call_from_host(&broker, CallRequest::by_operator("other", "x", None));
    refused(&out, ErrorCode::UnknownModule);
    assert_eq!(only_there.calls().len(), 1);
    for fake in [here, only_there] {
        fake.answer(Ok("null"));
    }
}
