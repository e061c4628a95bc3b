//! One module call through the ABI channel and back: the host hands a call
//! to the echo module's thread (typed crossbeam channel across the
//! abi_stable boundary), the module parses params, answers through its
//! `Host` handle, and the host's pending-call table hands the answer to the
//! caller's sink. Target: ≤ 2 µs.
//!
//! - `echo_round_trip_one_at_a_time` waits (spinning) for each answer
//!   before the next call: wall time of a full round trip, both thread
//!   hand-offs included. On a busy machine this is mostly the scheduler
//!   finding a CPU for the woken module thread.
//! - `echo_pipelined_64`: 64 calls queued, then wait; wall time per call.
//! - `echo_cpu_per_call`: the CPU work of one call, independent of
//!   scheduling: the caller's time to submit it plus the module thread's
//!   CPU time (`/proc/self/task/*/schedstat`) to receive, run and answer
//!   it, calls submitted 64 at a time.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use modhost::{
    modules::{
        CallContext, CallFailure, CallSink, Generation, HostServices, LoadPolicy, LoadedLibrary,
        StartOptions, inspect, load,
    },
    signing::SeqStore,
};
use modhost_plugin_api::{Caller, CallerKind, ErrorCode, abi_stable::std_types::RVec};

mod common;

/// Modules get nothing from the host here: the echo command needs nothing.
struct NoServices;

impl HostServices for NoServices {
    fn publish(
        &self,
        _: &str,
        _: Option<&CallContext>,
        _: &str,
        _: &str,
    ) -> Result<u64, CallFailure> {
        Ok(0)
    }
    fn send_to_user(
        &self,
        _: &str,
        _: Option<&CallContext>,
        _: &str,
        _: &str,
    ) -> Result<u64, CallFailure> {
        Ok(0)
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
        sink.finish(Err(CallFailure::new(
            ErrorCode::UnknownModule,
            "no modules here",
        )))
    }
}

/// Counts answers; the bench thread spins on the counter.
struct Counted(Arc<AtomicU64>);

impl CallSink for Counted {
    fn item(&mut self, _: &str) {}
    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        assert!(outcome.is_ok(), "echo failed: {:?}", outcome.err());
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// CPU time (ns) used so far by the module's instance thread(s).
fn module_thread_cpu() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("mod-echo") {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// The echo module, signed and verified, from a copy in `dir`.
fn load_echo(dir: &Path) -> LoadedLibrary {
    let bytes = common::echo_bytes();
    let so = dir.join("echo.so");
    std::fs::write(&so, &bytes).expect("copy echo.so");
    let (manifest, _abi) = inspect(&so).expect("inspect echo.so");
    let (key, keyring) = common::key_and_keyring();
    let envelope = common::envelope(&bytes, &key, manifest.version.as_str());
    std::fs::write(dir.join("echo.so.sig"), envelope.to_toml()).expect("write sig");
    let seqs = SeqStore::open(&dir.join("state")).expect("state dir");
    load(
        &so,
        &LoadPolicy {
            keyring: &keyring,
            seqs: &seqs,
            allow_rollback: false,
        },
    )
    .expect("load echo.so")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = load_echo(dir.path());
    let generation = Generation::start(
        Arc::new(lib),
        StartOptions {
            generation: 1,
            config: serde_json::json!({}),
            queue: 1024,
            call_timeout: Duration::from_secs(10),
            publishes_per_second: 50_000,
        },
        Arc::new(NoServices),
    )
    .expect("start echo");
    let caller = Caller {
        kind: CallerKind::User,
        user: "bench".into(),
        session: "s1".into(),
        roles: RVec::new(),
        module: "".into(),
    };
    let answered = Arc::new(AtomicU64::new(0));
    let mut id = 0u64;
    let call = |id: &mut u64| {
        *id += 1;
        let sink = Box::new(Counted(answered.clone()));
        match generation.call(
            *id,
            "echo",
            r#"{"text":"hello"}"#,
            caller.clone(),
            None,
            sink,
        ) {
            modhost::modules::Admission::Accepted => {}
            _ => panic!("call not accepted"),
        }
    };
    let wait_for = |n: u64| {
        while answered.load(Ordering::Acquire) < n {
            std::hint::spin_loop();
        }
    };

    let mut group = c.benchmark_group("module_call");
    group.bench_function("echo_round_trip_one_at_a_time", |b| {
        b.iter(|| {
            call(&mut id);
            wait_for(id);
        })
    });
    // Split of echo_cpu_per_call, printed after the group.
    let (split_submit, split_module, split_calls) = (
        std::cell::Cell::new(Duration::ZERO),
        std::cell::Cell::new(0u64),
        std::cell::Cell::new(0u64),
    );
    group.bench_function("echo_cpu_per_call", |b| {
        b.iter_custom(|iters| {
            let before = module_thread_cpu();
            let mut submit = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(64);
                let t = std::time::Instant::now();
                for _ in 0..n {
                    call(&mut id);
                }
                submit += t.elapsed();
                wait_for(id);
                left -= n;
            }
            let module = module_thread_cpu() - before;
            split_submit.set(split_submit.get() + submit);
            split_module.set(split_module.get() + module);
            split_calls.set(split_calls.get() + iters);
            submit + Duration::from_nanos(module)
        })
    });
    let calls = split_calls.get().max(1);
    eprintln!(
        "echo_cpu_per_call split: caller submits in {:.0} ns, module thread runs {:.0} ns per call ({} calls)",
        split_submit.get().as_nanos() as f64 / calls as f64,
        split_module.get() as f64 / calls as f64,
        calls
    );
    group.throughput(criterion::Throughput::Elements(64));
    group.bench_function("echo_pipelined_64", |b| {
        b.iter(|| {
            for _ in 0..64 {
                call(&mut id);
            }
            wait_for(id);
        })
    });
    group.finish();
    generation.begin_drain();
    generation.wait_stopped(Duration::from_secs(5));
}

criterion_group!(benches, bench);
criterion_main!(benches);
