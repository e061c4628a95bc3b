//! Hot reload against a running host: signed builds dropped into the
//! watched folder, replaced and removed while calls keep flowing. Refused
//! builds and faults are in `reload_faults`, config.toml edited live in
//! `reload_config`; both use the helpers here.
//!
//! No test asserts how long anything takes: each one waits (generously)
//! for the state it expects, polling the admin API.

use std::{
    collections::{BTreeSet, HashMap},
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Client, TestHost, VERSION, Workspace, sig_path, write_atomic};

/// Two distinct builds of one module: the built library, and the same bytes
/// with padding (another SHA-512, so another build as far as signing goes).
pub fn two_builds(lib: &str) -> [Vec<u8>; 2] {
    [
        Workspace::build_bytes(lib, 0),
        Workspace::build_bytes(lib, 4096),
    ]
}

pub async fn echo_answers(host: &TestHost) {
    let (status, body) = host.call("echo", "echo", json!({"x": 1})).await;
    assert_eq!((status, &body), (200, &json!({"result": {"x": 1}})));
}

/// `stamp`'s answer: the generation that gave it.
pub async fn stamp_generation(host: &TestHost) -> u64 {
    let (status, body) = host.call("stamp", "stamp", json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["generation"].as_u64().expect("a generation")
}

/// Waits until a refused (or disabled) row for `file` has an error
/// containing `needle`; returns the error.
pub async fn wait_refusal(host: &TestHost, file: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = host.refusals().await;
        if let Some(error) = rows
            .iter()
            .filter(|r| r["file"].as_str().is_some_and(|f| f.ends_with(file)))
            .filter_map(|r| r["error"].as_str())
            .find(|e| e.contains(needle))
        {
            return error.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{file}: no refusal mentioning {needle:?}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `probe` until it returns `Some`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "still not {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const CLIENTS: u64 = 4;
const CALLS_PER_CLIENT: u64 = 5_000;
/// Calls a client keeps in flight (below `max_calls_in_flight`).
const WINDOW: usize = 128;
const SWAPS: u64 = 10;

/// What one client saw.
#[derive(Default)]
struct Tally {
    sent: u64,
    /// Answers per call number.
    answers: HashMap<u64, u32>,
    /// Generations that answered, with how many calls each.
    generations: HashMap<u64, u64>,
    errors: Vec<Value>,
    strays: Vec<Value>,
}

/// A client that pipelines `stamp` calls (up to [`WINDOW`] in flight) until
/// it has sent [`CALLS_PER_CLIENT`] and `keep_going` is false, and records
/// every answer. `newest` is raised to the newest generation seen.
async fn caller(
    addr: std::net::SocketAddr,
    me: u64,
    keep_going: Arc<AtomicBool>,
    newest: Arc<AtomicU64>,
) -> Tally {
    let mut client = Client::connect(&format!("ws://{addr}/ws/?token=alice-token")).await;
    let hello = client.next().await;
    assert_eq!(hello["is_authorized"], true, "{hello}");
    let (mut tx, mut rx) = client.ws.split();
    let window = Arc::new(Semaphore::new(WINDOW));
    let mut writer = {
        let window = window.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while n < CALLS_PER_CLIENT || keep_going.load(Ordering::SeqCst) {
                window.acquire().await.expect("open").forget();
                n += 1;
                let frame = json!({
                    "type": "call", "module": "stamp", "command": "stamp",
                    "params": {"n": n}, "requestId": format!("{me}-{n}"),
                });
                tx.send(Message::text(frame.to_string()))
                    .await
                    .expect("send");
            }
            // The sink goes back too: dropping it would close the socket.
            (n, tx)
        })
    };
    let mut tally = Tally::default();
    let mut sent: Option<u64> = None;
    let mut _sink = None;
    loop {
        if sent.is_some_and(|s| tally.answers.len() as u64 >= s) {
            break;
        }
        tokio::select! {
            done = &mut writer, if sent.is_none() => {
                let (n, sink) = done.expect("writer");
                sent = Some(n);
                _sink = Some(sink);
            }
            msg = tokio::time::timeout(Duration::from_secs(60), rx.next()) => {
                let msg = msg.expect("an answer within 60 s").expect("socket open").expect("frame");
                record(&msg, me, &mut tally, &newest);
                window.add_permits(1);
            }
        }
    }
    // Anything more would be a second answer.
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_millis(500), rx.next()).await
    {
        record(&msg, me, &mut tally, &newest);
    }
    tally.sent = sent.unwrap_or(0);
    tally
}

fn record(msg: &Message, me: u64, tally: &mut Tally, newest: &AtomicU64) {
    let Message::Text(text) = msg else { return };
    let v: Value = serde_json::from_str(text).expect("JSON");
    if v["type"] == "resource_offer" {
        return;
    }
    let n = v["requestId"]
        .as_str()
        .and_then(|r| r.strip_prefix(&format!("{me}-")))
        .and_then(|n| n.parse::<u64>().ok());
    let Some(n) = n else {
        tally.strays.push(v);
        return;
    };
    *tally.answers.entry(n).or_default() += 1;
    if v["type"] == "reply" && v["result"]["params"]["n"] == n {
        let g = v["result"]["generation"].as_u64().expect("generation");
        *tally.generations.entry(g).or_default() += 1;
        newest.fetch_max(g, Ordering::SeqCst);
    } else {
        tally.errors.push(v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_keep_flowing_across_ten_rebuilds_each_answered_once() {
    let mut ws = Workspace::new();
    let builds = two_builds("stamp");
    ws.publish("stamp.so", &builds[1], "stamp", 1);
    let host = TestHost::start(
        &ws,
        "[limits]\ncalls_per_second = 1000000\nmax_calls_in_flight = 256",
    )
    .await;
    host.wait_module("stamp", "loaded", |m| m["generation"] == 1)
        .await;

    let keep_going = Arc::new(AtomicBool::new(true));
    let newest = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..CLIENTS)
        .map(|me| tokio::spawn(caller(host.addr, me, keep_going.clone(), newest.clone())))
        .collect();
    for seq in 2..=SWAPS + 1 {
        // The generation serving now has answered calls before it goes.
        eventually(&format!("answered by generation {}", seq - 1), || {
            let seen = newest.load(Ordering::SeqCst);
            async move { (seen >= seq - 1).then_some(()) }
        })
        .await;
        // Alternate the two builds, each signed with the next seq, written
        // tmp + rename (.so first, .sig last).
        ws.publish("stamp.so", &builds[(seq % 2) as usize], "stamp", seq);
        host.wait_module("stamp", &format!("at generation {seq}"), |m| {
            m["generation"] == seq
        })
        .await;
    }
    eventually("answered by the last generation", || {
        let seen = newest.load(Ordering::SeqCst);
        async move { (seen > SWAPS).then_some(()) }
    })
    .await;
    keep_going.store(false, Ordering::SeqCst);

    let mut total = 0;
    let mut generations: HashMap<u64, u64> = HashMap::new();
    for (me, c) in callers.into_iter().enumerate() {
        let tally = c.await.expect("client task");
        total += tally.sent;
        assert!(tally.strays.is_empty(), "client {me}: {:?}", tally.strays);
        assert!(
            tally.errors.is_empty(),
            "client {me}: {} calls failed, e.g. {:?}",
            tally.errors.len(),
            &tally.errors[..tally.errors.len().min(3)]
        );
        let missing: Vec<u64> = (1..=tally.sent)
            .filter(|n| !tally.answers.contains_key(n))
            .collect();
        assert!(missing.is_empty(), "client {me}: no answer for {missing:?}");
        let twice: Vec<(&u64, &u32)> = tally.answers.iter().filter(|(_, c)| **c > 1).collect();
        assert!(
            twice.is_empty(),
            "client {me}: answered more than once: {twice:?}"
        );
        assert_eq!(tally.answers.len() as u64, tally.sent, "client {me}");
        for (g, n) in tally.generations {
            *generations.entry(g).or_default() += n;
        }
    }
    assert!(total >= 20_000, "only {total} calls were sent");
    let answered_by: BTreeSet<u64> = generations.keys().copied().collect();
    assert_eq!(answered_by, (1..=SWAPS + 1).collect(), "{generations:?}");
    eprintln!("{total} calls, each answered once; answers per generation: {generations:?}");

    let row = host.module("stamp").await.expect("stamp listed");
    assert_eq!(row["state"], "running", "{row}");
    assert_eq!(row["generation"], SWAPS + 1);
    assert_eq!(row["seq"], SWAPS + 1);
    assert_eq!(row["generations"], SWAPS + 1, "builds kept mapped: {row}");
    assert!(host.refusals().await.is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_slow_copy_is_loaded_once_complete_and_never_refused() {
    let mut ws = Workspace::new();
    let [a, b] = two_builds("echo");
    ws.publish("echo.so", &a, "echo", 1);
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;

    // Like `cp` over the running build's file: truncate it and write the
    // new build into it in chunks, pausing between them; the .sig last.
    let dest = ws.plugins().join("echo.so");
    let sig = ws.sign_bytes(&b, "echo", VERSION, 2);
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&dest)
            .unwrap();
        for chunk in b.chunks(b.len() / 8 + 1) {
            file.write_all(chunk).unwrap();
            file.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            // The running build answers throughout (it runs from its own
            // sealed copy, not from this file).
            echo_answers(&host).await;
        }
    }
    write_atomic(&sig_path(&dest), sig.as_bytes());

    let row = host
        .wait_module("echo", "at generation 2", |m| m["generation"] == 2)
        .await;
    assert_eq!(row["seq"], 2);
    assert_eq!(row["last_error"], Value::Null, "{row}");
    assert!(host.refusals().await.is_empty());
    echo_answers(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn a_sig_that_arrives_before_its_library_waits_for_it() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let host = TestHost::start(&ws, "").await;

    let bytes = Workspace::build_bytes("stamp", 0);
    let sig = ws.sign_bytes(&bytes, "stamp", VERSION, 1);
    let dest = ws.plugins().join("stamp.so");
    write_atomic(&sig_path(&dest), sig.as_bytes());
    // Let the watcher see the lone .sig: it must neither load nor refuse.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(host.module("stamp").await, None);
    assert!(host.refusals().await.is_empty());

    // Then the library, written in place in two halves.
    let half = bytes.len() / 2;
    std::fs::write(&dest, &bytes[..half]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&dest)
        .unwrap()
        .write_all(&bytes[half..])
        .unwrap();

    host.wait_module("stamp", "loaded", |m| m["generation"] == 1)
        .await;
    assert_eq!(stamp_generation(&host).await, 1);
    assert!(host.refusals().await.is_empty());
    echo_answers(&host).await;
    host.stop().await;
}

/// Reads frames until a resource offer whose module list satisfies `done`.
async fn offer_where(client: &mut Client, done: impl Fn(&[Value]) -> bool) {
    loop {
        let text = client.next_text().await;
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["type"] == "resource_offer" && done(v["modules"].as_array().unwrap()) {
            return;
        }
    }
}

fn offers(modules: &[Value], name: &str) -> bool {
    modules.iter().any(|m| m["name"] == name)
}

#[tokio::test]
async fn removing_a_module_deregisters_it_and_re_adding_loads_it() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    let host = TestHost::start(&ws, "").await;
    let mut client = Client::authorized(&host, "alice-token").await;
    let so = ws.plugins().join("echo.so");
    let sig = std::fs::read(sig_path(&so)).unwrap();

    std::fs::remove_file(&so).unwrap();
    host.wait_module("echo", "deregistered", Value::is_null)
        .await;
    let (status, body) = host.call("echo", "echo", json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown-module"))
    );
    offer_where(&mut client, |m| !offers(m, "echo") && offers(m, "divide")).await;
    let reply = client
        .call(
            "divide",
            "divide",
            json!({"dividend": 6, "divisor": 3}),
            "d1",
        )
        .await;
    assert_eq!(reply["result"], json!({"quotient": 2}), "{reply}");

    // The same signed build comes back: it loads again (same seq: it is the
    // build accepted before, not a rollback).
    std::fs::copy(crate::harness::built_lib("echo"), &so).unwrap();
    let row = host
        .wait_module("echo", "loaded again", |m| m["generation"] == 2)
        .await;
    assert_eq!(row["seq"], 1);
    echo_answers(&host).await;
    offer_where(&mut client, |m| offers(m, "echo")).await;

    // Removing only the .sig deregisters too; restoring it brings it back.
    std::fs::remove_file(sig_path(&so)).unwrap();
    host.wait_module("echo", "deregistered", Value::is_null)
        .await;
    std::fs::write(sig_path(&so), &sig).unwrap();
    host.wait_module("echo", "loaded again", |m| m["generation"] == 3)
        .await;
    echo_answers(&host).await;
    assert!(host.refusals().await.is_empty());
    host.stop().await;
}

/// `VmRSS` of this process, in KiB.
fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Bytes held in the loader's sealed copies (`memfd:modhost-*`).
fn memfd_bytes() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:modhost-"))
        })
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .map(|m| m.len())
        .sum()
}

/// Reload latency and the memory each kept generation costs. Run alone:
/// `cargo test -p modhost-tests --test integration measure_reload -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run on its own with --ignored --nocapture"]
async fn measure_reload_latency_and_memory() {
    const RELOADS: u64 = 50;
    let mut ws = Workspace::new();
    let builds = two_builds("stamp");
    ws.publish("stamp.so", &builds[1], "stamp", 1);
    let host = TestHost::start(&ws, "").await;
    assert_eq!(stamp_generation(&host).await, 1);
    let (rss0, memfd0) = (vm_rss_kib(), memfd_bytes());
    let dest = ws.plugins().join("stamp.so");
    let mut latencies = Vec::new();
    for seq in 2..=RELOADS + 1 {
        let bytes = &builds[(seq % 2) as usize];
        let sig = ws.sign_bytes(bytes, "stamp", VERSION, seq);
        write_atomic(&dest, bytes);
        let tmp = ws.plugins().join(".stamp.so.sig.tmp");
        std::fs::write(&tmp, sig).unwrap();
        // The clock starts when the signed build has landed: the rename of
        // its .sig.
        let landed = Instant::now();
        std::fs::rename(&tmp, sig_path(&dest)).unwrap();
        loop {
            if host.state.registry.get("stamp").map(|g| g.generation) == Some(seq) {
                break;
            }
            assert!(
                landed.elapsed() < Duration::from_secs(60),
                "seq {seq} not loaded"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(landed.elapsed());
        assert_eq!(stamp_generation(&host).await, seq);
    }
    // Let the last old generations finish draining.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss1, memfd1) = (vm_rss_kib(), memfd_bytes());
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "reload latency over {RELOADS} reloads (signed .sig renamed into place → new generation serving): \
         median {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 9 / 10]),
        ms(latencies[0]),
        ms(latencies[latencies.len() - 1]),
    );
    eprintln!(
        "memory: VmRSS {} → {} MiB, {:.2} MiB per kept generation; sealed copies {} → {} MiB, {:.2} MiB per generation (library size {:.2} MiB)",
        rss0 / 1024,
        rss1 / 1024,
        (rss1 as f64 - rss0 as f64) / 1024.0 / RELOADS as f64,
        memfd0 >> 20,
        memfd1 >> 20,
        (memfd1 as f64 - memfd0 as f64) / 1048576.0 / RELOADS as f64,
        builds[0].len() as f64 / 1048576.0,
    );
    host.stop().await;
}
