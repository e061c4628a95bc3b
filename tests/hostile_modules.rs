//! Hostile modules (issue 7): publish floods, log floods, huge
//! allocations and an `on_unload` that never returns leave the host up,
//! bounded and serving, and name the module.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Client, TestHost, VERSION, Workspace};
use crate::harness_process::{ProcessHost, ProcessLimits};
use crate::hostile_connections::mib;
use crate::hostile_frames::still_serves;

/// A workspace with the bundled modules and `hostile`.
fn hostile_workspace() -> Workspace {
    let mut ws = Workspace::new();
    ws.install_bundled();
    ws.install("hostile", "hostile.so", "hostile", VERSION, 1);
    ws
}

/// A module that floods publishes while one subscriber never reads: the
/// stuck subscriber is bounded by its outbox, the host's memory stays
/// bounded, and a bystander keeps being served. Nothing here depends on
/// how fast the machine publishes (a busy machine may stay under the
/// default budget; `a_module_over_its_publish_budget_is_refused_and_named`
/// checks the budget itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_flooding_publishes_cannot_grow_the_host() {
    let ws = hostile_workspace();
    let host = ProcessHost::start(&ws, "[modules.hostile]\ncall_timeout_ms = 600000");
    let flood_room = json!({"target": "flood"});
    // A subscriber of the flooded room that never reads, one that reads,
    // and a bystander in another room.
    let mut stuck = Client::connect_small(host.addr, "/ws/?token=alice-token", Some(4096))
        .await
        .unwrap();
    stuck.next().await;
    stuck.subscribe(flood_room.clone(), "s").await;
    let mut reader = Client::authorized_at(host.addr, "alice-token").await;
    reader.subscribe(flood_room.clone(), "r").await;
    let reading = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            match tokio::time::timeout(Duration::from_secs(60), reader.ws.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => n += 1,
                Ok(Some(Ok(Message::Close(f)))) => return (n, f.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => {}
                _ => return (n, None),
            }
        }
    });
    let mut bystander = Client::authorized_at(host.addr, "bob-token").await;
    let room = json!({"target": "message", "customer": "2"});
    bystander.subscribe(room.clone(), "b").await;
    let before = host.rss_kib();

    const N: u64 = 300_000;
    let started = Instant::now();
    let url = host.url("/api/call");
    let flood = tokio::spawn(async move {
        crate::harness::admin_call(&url, "hostile", "flood", json!({"n": N})).await
    });
    // The bystander is served throughout.
    let (mut peak, mut ticks) = (before, 0);
    while !flood.is_finished() {
        assert_eq!(
            host.trigger(&json!({"rooms": [room], "data": ticks})).await,
            200
        );
        assert_eq!(bystander.next().await["data"], ticks);
        ticks += 1;
        peak = peak.max(host.rss_kib());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let (status, body) = flood.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let result = &body["result"];
    let accepted = result["accepted"].as_u64().unwrap();
    let refused = result["refused"].as_u64().unwrap();
    assert_eq!(accepted + refused, N, "{result}");
    let status = host.status().await;
    let (read, reader_close) = reading.await.unwrap();
    eprintln!(
        "module flood of {N} publishes in {elapsed:?}: {result}; reader got {read} (close {reader_close:?}); \
         bystander served {ticks} times; host RSS MiB before {}, peak {}; {status}",
        mib(before),
        mib(peak),
    );
    // Whatever the machine's speed, no second took more than the budget.
    // Budgets count in one-second windows; a run of `elapsed` touches at
    // most this many (the first may have opened before the run began).
    let secs = elapsed.as_secs() + 2;
    assert!(
        accepted <= 50_000 * secs,
        "{accepted} accepted in {elapsed:?}"
    );
    assert!(peak < before + 128 * 1024, "peak RSS {} MiB", mib(peak));
    drop(stuck);
    still_serves(&mut bystander).await;
}

/// A module's publishes past its budget are refused (`rate-limited`) and
/// the host names the module at most once a second. The budget is set far
/// below what any machine publishes, so the refusal cannot depend on speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_over_its_publish_budget_is_refused_and_named() {
    let ws = hostile_workspace();
    let host = ProcessHost::start(
        &ws,
        "[modules.hostile]\ncall_timeout_ms = 600000\npublishes_per_second = 1000",
    );
    let mut reader = Client::authorized_at(host.addr, "alice-token").await;
    reader.subscribe(json!({"target": "flood"}), "r").await;
    const N: u64 = 100_000;
    let started = Instant::now();
    let (status, body) =
        crate::harness::admin_call(&host.url("/api/call"), "hostile", "flood", json!({"n": N}))
            .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    let result = &body["result"];
    let accepted = result["accepted"].as_u64().unwrap();
    let refused = result["refused"].as_u64().unwrap();
    assert_eq!(accepted + refused, N, "{result}");
    eprintln!("budget 1,000/s, {N} publishes in {elapsed:?}: {result}");
    // Budgets count in one-second windows; a run of `elapsed` touches at
    // most this many (the first may have opened before the run began).
    let secs = elapsed.as_secs() + 2;
    assert!(
        accepted <= 1_000 * secs,
        "{accepted} accepted in {elapsed:?}"
    );
    // 100,000 publishes in under 100 s is any machine: some were refused.
    assert!(refused > 0 || elapsed.as_secs() >= 100, "{result}");
    // What was accepted was delivered.
    let got = reader.next().await;
    assert_eq!(got["type"], "publish", "{got}");
    let log = host.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("module publishes more than 1000 messages per second"))
        .count() as u64;
    assert!(
        warnings >= 1 && warnings <= secs,
        "{warnings} budget warnings in {elapsed:?}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("module=\"hostile\"") || l.contains("module=hostile")),
        "the warning names the module"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_flooding_its_log_is_cut_to_its_budget() {
    let ws = hostile_workspace();
    let host = ProcessHost::start(&ws, "[modules.hostile]\ncall_timeout_ms = 120000");
    let started = Instant::now();
    let (status, body) = host
        .call("hostile", "log_flood", json!({"n": 300_000}))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(
        (status, &body["result"]),
        (200, &json!({"logged": 300_000}))
    );
    // One more line in a later second reports what was dropped.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        host.call("hostile", "log_flood", json!({"n": 1})).await.0,
        200
    );
    let log = host.log();
    let written = log.lines().filter(|l| l.contains("log flood line")).count() as u64;
    let secs = elapsed.as_secs() + 2;
    eprintln!("log flood of 300,000 lines in {elapsed:?}: {written} written");
    // Plus the one line of the second call.
    assert!(
        written <= 1_000 * secs + 1,
        "{written} lines in {elapsed:?}"
    );
    assert!(written >= 1_000, "the budget's worth got through");
    assert!(
        log.contains("module logs more than 1000 lines per second"),
        "the cut is announced"
    );
    assert!(log.contains("were dropped"), "the count is reported");
    let (status, _) = host.call("echo", "echo", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_allocating_a_gigabyte_per_call_leaves_the_host_up() {
    let ws = hostile_workspace();
    // 6 GiB of address space for the whole host: the operator's bound
    // (in-process modules share the host's memory; see README).
    let host = ProcessHost::start_with(
        &ws,
        "[modules.hostile]\ncall_timeout_ms = 60000",
        ProcessLimits {
            address_space: Some(6 << 30),
            ..Default::default()
        },
    );
    let before = host.rss_kib();
    // Allocated, touched and freed within the call: the memory comes back.
    for _ in 0..3 {
        let (status, body) = host.call("hostile", "alloc", json!({"mb": 1024})).await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!({"allocated_mb": 1024}))
        );
    }
    let after_transient = host.rss_kib();
    // Kept: a leak that grows with every call, until the address space
    // limit turns the next allocation into an error the module returns.
    let mut kept = 0;
    let refusal = loop {
        let (status, body) = host
            .call("hostile", "alloc", json!({"mb": 1024, "keep": true}))
            .await;
        if status != 200 {
            break body;
        }
        kept += 1;
        assert!(kept < 8, "6 GiB of address space held {kept} GiB");
    };
    assert_eq!(refusal["error"]["code"], "module-error", "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not allocate")),
        "{refusal}"
    );
    let held = host.rss_kib();
    // The host and the other modules still answer.
    let (status, body) = host.call("echo", "echo", json!({"still": "here"})).await;
    assert_eq!((status, body), (200, json!({"result": {"still": "here"}})));
    let mut c = Client::authorized_at(host.addr, "alice-token").await;
    still_serves(&mut c).await;
    eprintln!(
        "alloc: RSS MiB before {}, after 3 x 1 GiB freed {}, holding {kept} GiB {}",
        mib(before),
        mib(after_transient),
        mib(held)
    );
    assert!(
        after_transient < before + 64 * 1024,
        "freed memory came back: {} MiB",
        mib(after_transient)
    );
    assert!(kept >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_never_returns_from_on_unload_delays_neither_replacement_nor_shutdown() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    ws.install("hostile", "hostile.so", "hostile", VERSION, 1);
    // The old generation's drain gives up after call_timeout + 5 s = 65 s:
    // far longer than any machine takes to load a build, so "replacement
    // did not wait for the drain" needs no clock: the drain has not given
    // up yet when the replacement returns.
    let config = "[modules.hostile]\nhang_unload = true\ncall_timeout_ms = 60000";
    let host = TestHost::start(&ws, config).await;
    assert_eq!(host.call("hostile", "spin", json!({"ms": 1})).await.0, 200);
    // Replacement: the new build serves at once; the old one's drain gives
    // up on it in the background.
    let file = ws.install("hostile", "hostile.so", "hostile", VERSION, 2);
    let registry = host.state.registry.clone();
    let loaded = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || registry.load_file(&file)),
    )
    .await
    .expect("replacement returns")
    .unwrap();
    let generation = loaded.expect("the new build loads");
    assert_eq!(generation.generation, 2);
    let row = host.module("hostile").await.unwrap();
    assert_eq!(
        row["stuck_threads"], 0,
        "the replacement waited for the drain: {row}"
    );
    let (status, body) = host.call("hostile", "spin", json!({"ms": 1})).await;
    assert_eq!((status, body), (200, json!({"result": {"spun": 1}})));
    let row = host.module("hostile").await.unwrap();
    assert_eq!(
        (row["generation"].clone(), row["state"].clone()),
        (json!(2), json!("running"))
    );
    // Shutdown: waits its 5 s for the hung on_unload, then goes on.
    let started = Instant::now();
    assert!(
        host.stop_within(Duration::from_secs(20)).await,
        "shutdown finished"
    );
    eprintln!(
        "shutdown with a hung on_unload took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_on_sigterm_though_a_module_never_returns_from_on_unload() {
    let ws = hostile_workspace();
    let mut host = ProcessHost::start(&ws, "[modules.hostile]\nhang_unload = true");
    assert_eq!(host.call("hostile", "spin", json!({"ms": 1})).await.0, 200);
    let started = Instant::now();
    let status = host.terminate(Duration::from_secs(20));
    let took = started.elapsed();
    let log = host.log();
    assert!(
        status.is_some(),
        "modhost still running 20 s after SIGTERM:\n{log}"
    );
    eprintln!("SIGTERM with a hung on_unload: exit {status:?} after {took:?}");
    assert!(log.contains("hang_unload = true: on_unload will never return"));
    assert!(
        log.contains("did not stop within"),
        "the host says which module it gave up on:\n{log}"
    );
}
