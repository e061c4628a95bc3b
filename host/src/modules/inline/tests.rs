//! Inline calls against modules linked into the test (no library file):
//! where a call runs, what a panic does, the budget's demotion, the
//! services refused inline, the drain waiting for an inline call, and
//! events (on the instance thread; dropped, never waited for, when busy).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc,
    },
    time::Duration,
};

use modhost_plugin_api::{
    Call, Caller, CallerKind, CommandSpec, ErrorCode, Host, Manifest, Module, ModuleError,
    abi::{InlineEntry, ModuleRoot_Ref},
};
use serde_json::{Value, json};

use crate::{
    modules::{
        Admission, CallContext, CallFailure, CallSink, GenState, Generation, HostServices,
        LoadedLibrary, StartOptions, generation::EVENT_ROOM,
    },
    signing::Envelope,
};

/// Answers every service with one delivery; the tests check that inline
/// calls never get this far.
struct Services;

impl HostServices for Services {
    fn publish(
        &self,
        _: &str,
        _: Option<&CallContext>,
        _: &str,
        _: &str,
    ) -> Result<u64, CallFailure> {
        Ok(1)
    }

    fn send_to_user(
        &self,
        _: &str,
        _: Option<&CallContext>,
        _: &str,
        _: &str,
    ) -> Result<u64, CallFailure> {
        Ok(1)
    }

    fn call_from_module(
        &self,
        _: &str,
        _: Option<&CallContext>,
        _: &str,
        _: &str,
        _: &str,
        sink: Box<dyn CallSink>,
    ) {
        sink.finish(Ok("null"));
    }
}

/// Sends the call's answer to the test.
struct Answer(mpsc::Sender<Result<String, CallFailure>>);

impl CallSink for Answer {
    fn item(&mut self, _result: &str) {}
    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let _ = self.0.send(outcome.map(str::to_owned));
    }
}

fn start<M: Module>() -> Arc<Generation> {
    let root = ModuleRoot_Ref::of::<M>();
    let manifest = (root.manifest())().unwrap();
    let lib = LoadedLibrary {
        root,
        envelope: Envelope {
            format: 1,
            module: manifest.name.to_string(),
            version: manifest.version.to_string(),
            seq: 1,
            abi: String::new(),
            size: 0,
            sha512: [0; 64],
            key_id: String::new(),
            signature: [0; 64],
        },
        manifest,
        file: "linked.so".into(),
        size: 0,
        inline: Some(InlineEntry::of::<M>()),
    };
    let options = StartOptions {
        generation: 1,
        config: json!({}),
        queue: 16,
        call_timeout: Duration::from_secs(10),
        publishes_per_second: 100,
    };
    Generation::start(Arc::new(lib), options, Arc::new(Services)).unwrap()
}

fn caller() -> Caller {
    Caller {
        kind: CallerKind::User,
        user: "alice".into(),
        session: "s1".into(),
        roles: Default::default(),
        module: "".into(),
    }
}

/// Calls `command` and waits for its answer.
fn call(generation: &Generation, id: u64, command: &str) -> Result<Value, CallFailure> {
    let (tx, rx) = mpsc::channel();
    match generation.call(id, command, "{}", caller(), None, Box::new(Answer(tx))) {
        Admission::Accepted => {}
        Admission::Rejected(_, failure) => return Err(failure),
        Admission::Stopping(_) => panic!("{command}: generation is stopping"),
    }
    let text = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("answered")?;
    Ok(serde_json::from_str(&text).unwrap())
}

fn this_thread() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

/// Counts the calls its instance handled, so a rebuild shows.
struct Probe {
    calls: u64,
}

impl Module for Probe {
    const NON_BLOCKING: &'static [&'static str] = &["where", "panic", "slow", "publish", "count"];

    fn manifest() -> Manifest {
        let mut manifest = Manifest::new("probe", "1.0.0");
        for name in ["where", "panic", "slow", "publish", "queued"] {
            manifest = manifest.command(CommandSpec::new(name));
        }
        // Declared non-blocking, but it streams: never run inline.
        manifest.command(CommandSpec::new("count").streams())
    }

    fn on_load(_host: &Host) -> Result<Self, String> {
        Ok(Probe { calls: 0 })
    }

    fn handle(&mut self, call: &Call, host: &Host) -> Result<Value, ModuleError> {
        self.calls += 1;
        match call.command.as_str() {
            "panic" => panic!("probe panicked on purpose"),
            "slow" => std::thread::sleep(super::INLINE_BUDGET * 5),
            "publish" => {
                host.publish(&json!([{"target": "t", "room": "r"}]), &json!(1))?;
            }
            _ => {}
        }
        Ok(json!({ "thread": this_thread(), "calls": self.calls }))
    }
}

#[test]
fn a_non_blocking_command_runs_on_the_callers_thread_and_others_on_the_instance_thread() {
    let probe = start::<Probe>();
    assert_eq!(call(&probe, 1, "where").unwrap()["thread"], this_thread());
    assert_eq!(call(&probe, 2, "queued").unwrap()["thread"], "mod-probe-g1");
    assert_eq!(call(&probe, 3, "count").unwrap()["thread"], "mod-probe-g1");
    let (inline, demoted) = probe.inline_commands();
    assert_eq!(
        inline,
        ["where", "panic", "slow", "publish"],
        "count streams"
    );
    assert!(demoted.is_empty());
    assert_eq!(probe.in_flight(), 0);
}

#[test]
fn a_panic_in_an_inline_call_is_answered_and_the_instance_rebuilt() {
    let probe = start::<Probe>();
    assert_eq!(call(&probe, 1, "where").unwrap()["calls"], 1);
    let failure = call(&probe, 2, "panic").unwrap_err();
    assert_eq!(failure.code, ErrorCode::ModulePanicked);
    assert!(
        failure.message.contains("probe panicked on purpose"),
        "{}",
        failure.message
    );
    assert_eq!(probe.restarts(), 1);
    assert_eq!(probe.state(), GenState::Running);
    // A fresh instance: its call count starts again, on either thread.
    let next = call(&probe, 3, "where").unwrap();
    assert_eq!(next["calls"], 1);
    assert_eq!(next["thread"], this_thread());
    assert_eq!(call(&probe, 4, "queued").unwrap()["calls"], 2);
}

#[test]
fn inline_calls_over_budget_in_a_row_demote_their_command_to_the_instance_thread() {
    let probe = start::<Probe>();
    // `slow` sleeps five budgets: every call overruns, whatever the load.
    for id in 1..super::DEMOTE_AFTER_OVERRUNS {
        let answer = call(&probe, u64::from(id), "slow").unwrap();
        assert_eq!(answer["thread"], this_thread());
    }
    assert!(probe.inline_commands().1.is_empty(), "two in a row");
    assert_eq!(call(&probe, 10, "slow").unwrap()["thread"], this_thread());
    let (inline, demoted) = probe.inline_commands();
    assert_eq!(demoted, ["slow"]);
    assert!(!inline.contains(&"slow".to_owned()));
    assert_eq!(call(&probe, 11, "slow").unwrap()["thread"], "mod-probe-g1");
    // The others stay inline. (Listed, not called: right after a call on
    // the instance thread, the instance may still be finishing it, and a
    // busy instance sends even an inline command to its inbox.)
    assert!(inline.contains(&"where".to_owned()));
}

/// The count of overruns in a row, with durations given rather than
/// measured: a call's wall time on a loaded machine is not the test's to
/// choose (a "fast" call once took over the budget here, under load).
#[test]
fn a_call_within_the_budget_starts_the_count_of_overruns_again() {
    let command = super::InlineCommand::new("slow".to_owned());
    let (over, within) = (super::INLINE_BUDGET * 2, super::INLINE_BUDGET / 2);
    for took in [over, within, over, over] {
        assert!(!command.record(took), "two in a row");
    }
    assert!(command.record(over), "the third in a row demotes");
    assert!(!command.record(over), "demoted once");
    assert!(command.demoted.load(std::sync::atomic::Ordering::Relaxed));
}

#[test]
fn an_inline_call_cannot_use_the_services_that_act_for_a_caller() {
    let probe = start::<Probe>();
    let failure = call(&probe, 1, "publish").unwrap_err();
    assert_eq!(failure.code, ErrorCode::ModuleError);
    assert!(
        failure.message.contains("NON_BLOCKING"),
        "{}",
        failure.message
    );
}

/// Loads once; every rebuild is refused.
struct Fragile;

static FRAGILE_LOADS: AtomicU32 = AtomicU32::new(0);
static FRAGILE_RAN_ON: Mutex<String> = Mutex::new(String::new());

impl Module for Fragile {
    const NON_BLOCKING: &'static [&'static str] = &["panic"];

    fn manifest() -> Manifest {
        Manifest::new("fragile", "1.0.0").command(CommandSpec::new("panic"))
    }

    fn on_load(_host: &Host) -> Result<Self, String> {
        match FRAGILE_LOADS.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(Fragile),
            _ => Err("fragile loads once".into()),
        }
    }

    fn handle(&mut self, _call: &Call, _host: &Host) -> Result<Value, ModuleError> {
        *FRAGILE_RAN_ON.lock().unwrap() = this_thread();
        panic!("fragile panicked on purpose")
    }
}

#[test]
fn an_inline_panic_whose_instance_cannot_be_rebuilt_fails_the_generation() {
    let fragile = start::<Fragile>();
    assert_eq!(
        call(&fragile, 1, "panic").unwrap_err().code,
        ErrorCode::ModulePanicked
    );
    assert_eq!(fragile.state(), GenState::Failed);
    let refused = call(&fragile, 2, "panic").unwrap_err();
    assert_eq!(refused.code, ErrorCode::ModuleUnavailable);
    // Its thread ends at the next message it takes.
    fragile.begin_drain();
    assert!(fragile.wait_stopped(Duration::from_secs(10)));
    assert_eq!(fragile.state(), GenState::Failed);
}

/// Its inline command holds the instance until the test lets it go.
struct Gated;

static GATE_ENTERED: AtomicBool = AtomicBool::new(false);
static GATE_OPEN: AtomicBool = AtomicBool::new(false);
static GATED_LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());

impl Module for Gated {
    const NON_BLOCKING: &'static [&'static str] = &["gate"];

    fn manifest() -> Manifest {
        Manifest::new("gated", "1.0.0").command(CommandSpec::new("gate"))
    }

    fn on_load(_host: &Host) -> Result<Self, String> {
        Ok(Gated)
    }

    fn handle(&mut self, _call: &Call, _host: &Host) -> Result<Value, ModuleError> {
        GATE_ENTERED.store(true, Ordering::SeqCst);
        while !GATE_OPEN.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        GATED_LOG.lock().unwrap().push("call answered");
        Ok(json!(this_thread()))
    }

    fn on_unload(&mut self, _host: &Host) {
        GATED_LOG.lock().unwrap().push("unloaded");
    }
}

#[test]
fn the_drain_waits_for_an_inline_call_before_the_module_is_unloaded() {
    let gated = start::<Gated>();
    let caller_thread = {
        let gated = gated.clone();
        std::thread::Builder::new()
            .name("inline-caller".into())
            .spawn(move || call(&gated, 1, "gate"))
            .unwrap()
    };
    while !GATE_ENTERED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let drain = {
        let gated = gated.clone();
        std::thread::spawn(move || {
            gated.begin_drain();
            gated.wait_stopped(Duration::from_secs(10))
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        GATED_LOG.lock().unwrap().is_empty(),
        "unloaded under a running call"
    );
    assert!(!drain.is_finished(), "the drain did not wait");
    GATE_OPEN.store(true, Ordering::SeqCst);
    assert_eq!(caller_thread.join().unwrap().unwrap(), "inline-caller");
    assert!(drain.join().unwrap(), "instance stopped");
    assert_eq!(*GATED_LOG.lock().unwrap(), ["call answered", "unloaded"]);
    assert_eq!(gated.state(), GenState::Stopped);
}

/// Holds its instance thread in `block` until [`RELEASE`]; records each
/// event with the thread it ran on; `events` (non-blocking) lists them.
struct Listener {
    events: Vec<Value>,
}

static RELEASE: AtomicBool = AtomicBool::new(false);
static BLOCKING: AtomicBool = AtomicBool::new(false);

impl Module for Listener {
    const NON_BLOCKING: &'static [&'static str] = &["events"];

    fn manifest() -> Manifest {
        Manifest::new("listener", "1.0.0")
            .command(CommandSpec::new("block"))
            .command(CommandSpec::new("events"))
    }

    fn on_load(_host: &Host) -> Result<Self, String> {
        Ok(Listener { events: Vec::new() })
    }

    fn handle(&mut self, call: &Call, _host: &Host) -> Result<Value, ModuleError> {
        if call.command.as_str() == "block" {
            BLOCKING.store(true, Ordering::Release);
            while !RELEASE.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(2));
            }
            return Ok(json!(this_thread()));
        }
        Ok(Value::Array(self.events.clone()))
    }

    fn on_event(&mut self, name: &str, data: &Value, _host: &Host) {
        self.events
            .push(json!({"name": name, "data": data, "thread": this_thread()}));
    }
}

#[test]
fn events_reach_the_instance_thread_and_a_busy_module_loses_them_without_waiting() {
    let generation = start::<Listener>();
    let blocked = {
        let generation = generation.clone();
        std::thread::spawn(move || call(&generation, 1, "block"))
    };
    while !BLOCKING.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(2));
    }
    // The instance holds `block`; events wait in its inbox, up to the room
    // they may take there, and the rest are refused at once.
    let started = std::time::Instant::now();
    let queued: Vec<bool> = (0..EVENT_ROOM + 3)
        .map(|i| generation.event("user_login", &json!({"user": format!("u{i}")}).to_string()))
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an event waited"
    );
    RELEASE.store(true, Ordering::Release);
    let instance_thread = blocked.join().unwrap().unwrap();
    let sent = queued.iter().filter(|q| **q).count();
    assert_eq!(sent, EVENT_ROOM, "{queued:?}");
    let events = call(&generation, 2, "events").unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), sent, "{events:?}");
    assert_eq!(events[0]["name"], "user_login");
    assert_eq!(events[0]["data"], json!({"user": "u0"}));
    assert!(
        events.iter().all(|e| e["thread"] == instance_thread),
        "{events:?}"
    );
    assert_ne!(instance_thread, this_thread());
}
