//! One publish naming many rooms (issue 12, item 5): repeats are dropped
//! before the index is walked, more than `[limits] max_rooms_per_publish`
//! (64) is refused with a clear error (module publish, `POST /trigger/`),
//! and a subscribe by another client is answered while such a publish
//! runs. Runs the real binary, so the host's RSS is its own.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::harness::{Client, TRIGGER_TOKEN, Workspace};
use crate::harness_process::ProcessHost;

/// Subscribing connections, and rooms each subscribes to: 20,000 rooms,
/// each with one subscription, all reached by one wildcard room.
const SUBSCRIBERS: usize = 2;
const ROOMS_EACH: usize = 10_000;
const ROOMS: usize = SUBSCRIBERS * ROOMS_EACH;

/// The default `[limits] max_rooms_per_publish`.
const MAX_ROOMS: usize = 64;

/// How often the wildcard room is named past the limit: the 61 KB publish
/// of the security review, which fits a call's params and a client frame.
const FLOOD_COPIES: usize = 1_700;

/// What a wait past this means is a publish holding the fan-out lock; a
/// subscribe is otherwise answered in milliseconds, and the review saw 28 s.
const PROMPT: Duration = Duration::from_secs(10);

/// The room of subscription `i` (`customer` "0" … "19999").
fn room(i: usize) -> Value {
    json!({"target": "message", "customer": i.to_string()})
}

fn wildcard() -> Value {
    json!({"target": "message", "customer": "*"})
}

/// Subscribes `c` to rooms `from..from + n`, 500 frames at a time (within
/// what a connection may leave unanswered).
async fn subscribe_range(c: &mut Client, from: usize) {
    let ids: Vec<usize> = (from..from + ROOMS_EACH).collect();
    for batch in ids.chunks(500) {
        for &i in batch {
            c.send_json(
                json!({"type": "subscribe", "room": room(i), "requestId": format!("s{i}")}),
            )
            .await;
        }
        for _ in batch {
            let reply = c.next().await;
            assert_eq!(reply["code"], "success", "{reply}");
        }
    }
}

/// Reads room messages until `"end"`; returns how many carried each of
/// `"wide"` and `"refused"`.
async fn read_until_end(mut c: Client) -> (usize, usize) {
    let (mut wide, mut refused) = (0, 0);
    loop {
        let Some(text) = c.next_text_within(Duration::from_secs(120)).await else {
            return (wide, refused);
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        match v["data"].as_str() {
            Some("wide") => wide += 1,
            Some("refused") => refused += 1,
            Some("end") => return (wide, refused),
            _ => {}
        }
    }
}

/// The next frame of `c` that answers `rid` (room messages skipped), or
/// `None` after `wait`.
async fn answer_to(c: &mut Client, rid: &str, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v: Value = serde_json::from_str(&c.next_text_within(left).await?).unwrap();
        if v["requestId"] == rid && v["type"] != "publish" {
            return Some(v);
        }
    }
}

/// The attacker asks echo to publish `data` to the wildcard room named
/// `copies` times; meanwhile the bystander subscribes. Returns the
/// attacker's answer and how long the bystander waited for its own.
async fn publish_beside_a_subscribe(
    attacker: &mut Client,
    bystander: &mut Client,
    copies: usize,
    data: &str,
) -> (Value, Duration) {
    let rooms = vec![wildcard(); copies];
    let frame = json!({"type": "call", "module": "echo", "command": "publish",
        "params": {"rooms": rooms, "data": data}, "requestId": data})
    .to_string();
    assert!(
        frame.len() < 65_536,
        "{} bytes: past max_frame_bytes",
        frame.len()
    );
    attacker.send(&frame).await;
    // Let the publish get under way before the bystander asks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let rid = format!("b-{data}");
    bystander
        .send_json(json!({"type": "subscribe", "room": {"target": "bystander", "customer": data}, "requestId": rid}))
        .await;
    // Far past `PROMPT`, so that a stall is measured rather than cut off.
    let answer = answer_to(bystander, &rid, Duration::from_secs(300)).await;
    let waited = started.elapsed();
    assert_eq!(answer.expect("the bystander's answer")["code"], "success");
    let reply = answer_to(attacker, data, Duration::from_secs(300))
        .await
        .expect("the publisher's answer");
    (reply, waited)
}

/// `POST /trigger/` with `body`; returns the status and the body text.
async fn trigger(host: &ProcessHost, body: &Value) -> (u16, String) {
    let resp = crate::harness::http()
        .post(host.url("/trigger/"))
        .bearer_auth(TRIGGER_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_naming_a_room_many_times_is_bounded_and_stalls_nobody() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = ProcessHost::start(
        &ws,
        &format!(
            "[limits]\nmax_subscriptions = {ROOMS_EACH}\nsend_queue = {}",
            2 * ROOMS
        ),
    );
    let mut readers = Vec::new();
    for s in 0..SUBSCRIBERS {
        let mut c = Client::authorized_at(host.addr, "alice-token").await;
        subscribe_range(&mut c, s * ROOMS_EACH).await;
        readers.push(tokio::spawn(read_until_end(c)));
    }
    let mut attacker = Client::authorized_at(host.addr, "alice-token").await;
    // Subscribing to rooms the publishes do not reach, so every count
    // below is exact whenever its subscribe lands.
    let mut bystander = Client::authorized_at(host.addr, "admin-token").await;

    let before = host.rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), host.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(crate::harness_process::rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    // Within the limit: the 64 copies are one room, each subscription gets
    // the message once.
    let (within, waited_within) =
        publish_beside_a_subscribe(&mut attacker, &mut bystander, MAX_ROOMS, "wide").await;
    assert_eq!(within["result"], json!({"delivered": ROOMS}), "{within}");
    // Past it: refused before any room is walked, with what to do.
    let (past, waited_past) =
        publish_beside_a_subscribe(&mut attacker, &mut bystander, FLOOD_COPIES, "refused").await;
    assert_eq!(past["code"], "too-large", "{past}");
    let message = past["message"].as_str().unwrap();
    assert!(
        message.contains("max_rooms_per_publish") && message.contains("1700"),
        "{message}"
    );
    // The same limit for `POST /trigger/`.
    let (status, text) = trigger(
        &host,
        &json!({"rooms": vec![wildcard(); FLOOD_COPIES], "data": "refused"}),
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_rooms_per_publish"), "{text}");
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);

    // Nothing of the refused publishes went out; the accepted one reached
    // every subscription exactly once.
    let (status, text) = trigger(
        &host,
        &json!({"rooms": [room(0), room(ROOMS_EACH)], "data": "end"}),
    )
    .await;
    assert_eq!((status, text.as_str()), (200, r#"{"delivered":2}"#));
    for reader in readers {
        assert_eq!(reader.await.unwrap(), (ROOMS_EACH, 0));
    }
    let after = host.rss_kib();
    eprintln!(
        "publish naming one wildcard room, {ROOMS} rooms subscribed: the bystander's subscribe waited \
         {waited_within:?} beside {MAX_ROOMS} copies (accepted), {waited_past:?} beside {FLOOD_COPIES} (refused); \
         host RSS MiB before {}, peak {}, after {}",
        before / 1024,
        peak / 1024,
        after / 1024
    );
    assert!(
        waited_within < PROMPT && waited_past < PROMPT,
        "the bystander waited {waited_within:?} and {waited_past:?}"
    );
    assert!(
        peak < before + 64 * 1024,
        "peak RSS {} MiB from {} MiB",
        peak / 1024,
        before / 1024
    );
}
