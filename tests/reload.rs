//! Hot reload against a running host: signed builds dropped into the
//! watched folder, replaced, removed and refused while calls keep flowing;
//! faults contained; config.toml edited live.
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

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use modhost::signing;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Client, TestHost, VERSION, Workspace, sig_path, write_atomic};

/// Two distinct builds of one module: the built library, and the same bytes
/// with padding (another SHA-512, so another build as far as signing goes).
fn two_builds(lib: &str) -> [Vec<u8>; 2] {
    [
        Workspace::build_bytes(lib, 0),
        Workspace::build_bytes(lib, 4096),
    ]
}

async fn echo_answers(host: &TestHost) {
    let (status, body) = host.call("echo", "echo", json!({"x": 1})).await;
    assert_eq!((status, &body), (200, &json!({"result": {"x": 1}})));
}

/// `stamp`'s answer: the generation that gave it.
async fn stamp_generation(host: &TestHost) -> u64 {
    let (status, body) = host.call("stamp", "stamp", json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["generation"].as_u64().expect("a generation")
}

/// Waits until a refused (or disabled) row for `file` has an error
/// containing `needle`; returns the error.
async fn wait_refusal(host: &TestHost, file: &str, needle: &str) -> String {
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
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
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

#[tokio::test]
async fn refused_builds_leave_the_running_one_serving() {
    let mut ws = Workspace::new();
    let [a, b] = two_builds("echo");
    ws.publish("echo.so", &a, "echo", 5);
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;

    // Tampered after signing.
    let sig = ws.sign_bytes(&b, "echo", VERSION, 6);
    let mut tampered = b.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    ws.publish_bytes("echo.so", &tampered, &sig);
    wait_refusal(&host, "echo.so", "SHA-512").await;
    let row = host.module("echo").await.unwrap();
    assert_eq!(
        (&row["generation"], &row["state"]),
        (&json!(1), &json!("running"))
    );
    assert!(
        row["last_error"].as_str().unwrap().contains("SHA-512"),
        "{row}"
    );
    echo_answers(&host).await;

    // A lower seq, and another build under the running seq: rollbacks.
    ws.publish("echo.so", &b, "echo", 4);
    wait_refusal(
        &host,
        "echo.so",
        "seq 4 is not above the highest accepted seq 5",
    )
    .await;
    ws.publish("echo.so", &b, "echo", 5);
    wait_refusal(
        &host,
        "echo.so",
        "a different build was already accepted at seq 5",
    )
    .await;
    echo_answers(&host).await;

    // The running build seen again (same bytes, same seq): nothing happens,
    // and it is no rollback.
    ws.publish("echo.so", &a, "echo", 5);
    eventually("the refusal row cleared", || async {
        host.refusals().await.is_empty().then_some(())
    })
    .await;
    assert_eq!(host.module("echo").await.unwrap()["generation"], 1);

    // The same bytes re-signed with a higher seq: a new generation.
    ws.publish("echo.so", &a, "echo", 6);
    let row = host
        .wait_module("echo", "at generation 2", |m| m["generation"] == 2)
        .await;
    assert_eq!((&row["seq"], &row["last_error"]), (&json!(6), &Value::Null));
    // And the other build with the next seq.
    ws.publish("echo.so", &b, "echo", 7);
    host.wait_module("echo", "at generation 3", |m| m["generation"] == 3)
        .await;
    echo_answers(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn panics_in_a_handler_or_in_start_leave_the_module_serving() {
    let mut ws = Workspace::new();
    let [a, b] = two_builds("stamp");
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    ws.publish("stamp.so", &a, "stamp", 1);
    let marker = ws.path().join("stamp-must-panic");
    let host = TestHost::start(
        &ws,
        &format!(
            "[modules.stamp]\npanic_if_exists = {:?}",
            marker.display().to_string()
        ),
    )
    .await;

    // In a handler: that call fails, the instance is rebuilt, the next works.
    let (status, body) = host.call("divide", "boom", json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (500, &json!("module-panicked"))
    );
    let (status, body) = host
        .call("divide", "divide", json!({"dividend": 9, "divisor": 3}))
        .await;
    assert_eq!((status, body), (200, json!({"result": {"quotient": 3}})));
    assert_eq!(host.module("divide").await.unwrap()["restarts"], 1);

    // In start, for a new build: refused; the running build keeps serving.
    std::fs::write(&marker, "").unwrap();
    ws.publish("stamp.so", &b, "stamp", 2);
    let reason = wait_refusal(&host, "stamp.so", "panicked").await;
    assert!(reason.contains("on_load"), "{reason}");
    let row = host.module("stamp").await.unwrap();
    assert_eq!(
        (&row["generation"], &row["state"]),
        (&json!(1), &json!("running"))
    );
    assert!(
        row["last_error"].as_str().unwrap().contains("panicked"),
        "{row}"
    );
    assert_eq!(stamp_generation(&host).await, 1);

    // Fixed: the next build starts.
    std::fs::remove_file(&marker).unwrap();
    ws.publish("stamp.so", &b, "stamp", 3);
    host.wait_module("stamp", "at generation 2", |m| m["generation"] == 2)
        .await;
    assert_eq!(stamp_generation(&host).await, 2);
    assert!(host.refusals().await.is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_hung_handler_times_out_then_degrades_until_reset() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    // A timeout a busy machine never reaches for an echo; the hung
    // handler sleeps far past it.
    let host = TestHost::start(&ws, "[modules.echo]\ncall_timeout_ms = 3000").await;
    // An admin: echo's sleep is admin-only.
    let mut client = Client::authorized(&host, "admin-token").await;

    // A handler that does not return: it and the calls queued behind it
    // time out.
    for i in 1..=modhost::modules::DEGRADE_AFTER_TIMEOUTS {
        client
            .send_json(json!({"type": "call", "module": "echo", "command": "sleep",
                "params": {"ms": 20_000}, "requestId": format!("h{i}")}))
            .await;
    }
    for _ in 1..=modhost::modules::DEGRADE_AFTER_TIMEOUTS {
        let reply = client.next().await;
        assert_eq!(reply["code"], "module-timeout", "{reply}");
    }
    let row = host
        .wait_module("echo", "degraded", |m| m["state"] == "degraded")
        .await;
    assert!(
        row["last_error"].as_str().unwrap().contains("degraded"),
        "{row}"
    );

    // Degraded: calls fail at once instead of queueing behind the stuck
    // thread; other modules are unaffected.
    let (status, body) = host.call("echo", "echo", json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("module-unavailable"))
    );
    let reply = client.call("echo", "echo", json!({}), "after").await;
    assert_eq!(reply["code"], "module-unavailable", "{reply}");
    let (status, _) = host
        .call("divide", "divide", json!({"dividend": 1, "divisor": 1}))
        .await;
    assert_eq!(status, 200);

    // An operator reset starts a fresh instance from the same build, while
    // the old thread is still asleep.
    let (status, body) = host.reset("echo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["generation"], &body["state"]),
        (&json!(2), &json!("running"))
    );
    echo_answers(&host).await;
    let reply = client
        .call("echo", "echo", json!({"ok": true}), "fresh")
        .await;
    assert_eq!(reply["result"], json!({"ok": true}), "{reply}");
    let row = host.module("echo").await.unwrap();
    assert_eq!((&row["state"], &row["seq"]), (&json!("running"), &json!(1)));
    assert_eq!(row["last_error"], Value::Null);
    assert_eq!(row["generations"], 1, "a reset maps no new library: {row}");
    // The stuck thread misses its drain deadline and is counted.
    host.wait_module("echo", "counting a stuck thread", |m| {
        m["stuck_threads"] == 1
    })
    .await;
    echo_answers(&host).await;

    let (status, body) = host.reset("ghost").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown-module"))
    );
    host.stop().await;
}

#[tokio::test]
async fn config_edits_apply_live_and_bad_ones_are_kept_out() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    let base = "[modules.echo]\ngreeting = \"hello\"";
    let text = ws.write_config(base);
    let host = TestHost::start_text(&ws, &text).await;
    let echo_config = || async { host.call("echo", "config", json!({})).await.1["result"].clone() };
    assert_eq!(echo_config().await, json!({"greeting": "hello"}));
    let status = host.config_status().await;
    assert_eq!(status["watching"], true, "{status}");

    // A bad edit: one error with file and line; the running config stays.
    ws.write_config(&format!("{base}\n[limits]\nsend_queue = \"lots\""));
    let status = eventually("reporting the bad edit", || async {
        let s = host.config_status().await;
        (!s["last_error"].is_null()).then_some(s)
    })
    .await;
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("config.toml:") && error.contains("send_queue"),
        "{error}"
    );
    assert!(status["last_error_line"].as_u64().is_some(), "{status}");
    assert_eq!(status["applied"], 0);
    assert_eq!(host.state.config.load().limits.send_queue, 1024);
    assert_eq!(echo_config().await, json!({"greeting": "hello"}));
    Client::authorized(&host, "alice-token").await;
    assert_eq!(
        host.ws("carol-token").await.next().await,
        json!({"is_authorized": false})
    );

    // A good edit: module config delivered, a new token, a module switched
    // off, a per-module timeout.
    let good = "[modules.echo]\ngreeting = \"bonjour\"\ncall_timeout_ms = 2500\n\
        [modules.divide]\nenabled = false\n\
        [[auth.tokens]]\ntoken = \"carol-token\"\nuser = \"carol\"\nroles = [\"user\"]\n\
        allowed_rooms = [{ target = \"message\", customer = \"3\" }]";
    ws.write_config(good);
    let status = eventually("applying the good edit", || async {
        let s = host.config_status().await;
        (s["applied"] == 1).then_some(s)
    })
    .await;
    assert_eq!(status["last_error"], Value::Null, "{status}");
    eventually("echo seeing its new config", || async {
        (echo_config().await == json!({"greeting": "bonjour"})).then_some(())
    })
    .await;
    Client::authorized(&host, "carol-token").await;
    Client::authorized(&host, "alice-token").await;
    host.wait_module("divide", "deregistered", Value::is_null)
        .await;
    let (_, body) = host
        .call("divide", "divide", json!({"dividend": 1, "divisor": 1}))
        .await;
    assert_eq!(body["error"]["code"], "unknown-module");
    let disabled = wait_refusal(&host, "divide.so", "disabled").await;
    assert!(disabled.contains("enabled = false"), "{disabled}");
    let echo = host.state.registry.get("echo").unwrap();
    assert_eq!(echo.call_timeout_ms(), 2500);
    assert_eq!(
        echo.generation, 1,
        "a config change is delivered, not a reload"
    );

    // Switched on again: its file is loaded.
    ws.write_config("[modules.echo]\ngreeting = \"bonjour\"");
    host.wait_module("divide", "loaded again", |m| m["state"] == "running")
        .await;
    let (status, _) = host
        .call("divide", "divide", json!({"dividend": 1, "divisor": 1}))
        .await;
    assert_eq!(status, 200);

    // A change that needs a restart: warned, and the host keeps its socket.
    let moved = ws
        .config_text("[modules.echo]\ngreeting = \"bonjour\"")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:9\"");
    write_atomic(&ws.path().join("config.toml"), moved.as_bytes());
    let status = eventually("warning about server.listen", || async {
        let s = host.config_status().await;
        (s["restart_pending"] == json!(["server.listen"])).then_some(s)
    })
    .await;
    assert_eq!(status["last_error"], Value::Null, "{status}");
    assert_eq!(host.state.config.load().server.listen.port(), 0);
    echo_answers(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn a_key_added_at_runtime_lets_a_refused_build_load() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let host = TestHost::start(&ws, "").await;

    // Signed with a key the host does not trust yet.
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let bytes = Workspace::build_bytes("stamp", 0);
    let sig = signing::sign(
        &bytes,
        &key,
        "stamp",
        VERSION,
        1,
        modhost_plugin_api::abi::ABI,
    );
    ws.publish_bytes("stamp.so", &bytes, &sig.to_toml());
    wait_refusal(&host, "stamp.so", "no verify key").await;

    let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
    write_atomic(
        &ws.path().join("verify").join("stamp.pub"),
        format!("{public}\n").as_bytes(),
    );
    host.wait_module("stamp", "loaded", |m| m["generation"] == 1)
        .await;
    assert_eq!(stamp_generation(&host).await, 1);
    assert!(host.refusals().await.is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_restart_loads_the_same_builds_again() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 3);
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;
    host.stop().await;

    // Same files, same state folder: the build at the rollback mark is the
    // accepted one, not a rollback.
    let host = TestHost::start(&ws, "").await;
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
