//! One module call through the ABI channel and back: the host hands a call
//! to the echo module's thread (typed crossbeam channel across the
//! abi_stable boundary), the module parses params, answers through its
//! `Host` handle, and the host's pending-call table hands the answer to the
//! caller's sink. Target: ≤ 2 µs.
//!
//! `one_at_a_time` waits (spinning) for each answer before the next call:
//! a full round trip including both thread hand-offs. `pipelined_64` keeps
//! 64 calls queued and reports the cost per call when the module thread
//! never sleeps.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use modhost::{
    modules::{
        CallFailure, CallSink, Generation, HostServices, LoadPolicy, StartOptions, inspect, load,
    },
    signing::SeqStore,
};
use modhost_plugin_api::{Caller, CallerKind, ErrorCode, abi_stable::std_types::RVec};

mod common;

/// Modules get nothing from the host here: the echo command needs nothing.
struct NoServices;

impl HostServices for NoServices {
    fn publish(&self, _: &str, _: &str, _: &str) -> Result<u64, CallFailure> {
        Ok(0)
    }
    fn send_to_user(&self, _: &str, _: &str, _: &str) -> Result<u64, CallFailure> {
        Ok(0)
    }
    fn call_from_module(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
        _: Box<dyn CallSink>,
    ) -> Result<(), CallFailure> {
        Err(CallFailure::new(
            ErrorCode::UnknownModule,
            "no modules here",
        ))
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

fn bench(c: &mut Criterion) {
    let bytes = common::echo_bytes();
    let dir = tempfile::tempdir().expect("tempdir");
    let so = dir.path().join("echo.so");
    std::fs::write(&so, &bytes).expect("copy echo.so");
    let (manifest, _abi) = inspect(&so).expect("inspect echo.so");
    let (key, keyring) = common::key_and_keyring();
    let envelope = common::envelope(&bytes, &key, manifest.version.as_str());
    std::fs::write(dir.path().join("echo.so.sig"), envelope.to_toml()).expect("write sig");
    let seqs = SeqStore::open(&dir.path().join("state")).expect("state dir");
    let lib = load(
        &so,
        &LoadPolicy {
            keyring: &keyring,
            seqs: &seqs,
            allow_rollback: false,
        },
    )
    .expect("load echo.so");
    let generation = Generation::start(
        &lib,
        StartOptions {
            generation: 1,
            config: serde_json::json!({}),
            queue: 1024,
            call_timeout: Duration::from_secs(10),
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
    let mut call = |id: &mut u64| {
        *id += 1;
        let sink = Box::new(Counted(answered.clone()));
        match generation.call(*id, "echo", r#"{"text":"hello"}"#, caller.clone(), sink) {
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
