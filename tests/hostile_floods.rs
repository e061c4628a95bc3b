//! Hostile clients flooding one connection (issue 7): subscribes, calls
//! and unpaced frames get errors, limits or a close; other clients keep
//! being served; a burst within the limits is answered in full.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Client, TRIGGER_TOKEN, Workspace};
use crate::harness_process::ProcessHost;
use crate::hostile_frames::{host, still_serves};

/// What a pipelining client got back.
struct Pipelined {
    replies: Vec<Value>,
    close: Option<u16>,
}

/// Sends `frames` on `c`, never more than `window` ahead of the replies
/// (each frame here gets exactly one reply), and collects the replies until
/// `frames.len()` arrived, the connection closed, or 60 s passed.
async fn pipeline(c: Client, frames: Vec<String>, window: usize) -> Pipelined {
    let mut ws = c.ws;
    let mut replies = Vec::with_capacity(frames.len());
    let mut close = None;
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while replies.len() < frames.len() {
        while sent < frames.len() && sent - replies.len() < window {
            if ws.feed(Message::text(frames[sent].clone())).await.is_err() {
                break;
            }
            sent += 1;
        }
        let _ = ws.flush().await;
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::String(t.to_string()));
                // Room messages are not replies (the flooder may be
                // subscribed to where others publish).
                if v["type"] != "resource_offer" && v["type"] != "publish" {
                    replies.push(v);
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                close = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    let _ = ws.close(None).await;
    Pipelined { replies, close }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_flood_gets_errors_and_others_keep_receiving() {
    let (_ws, host) = host("[limits]\nmax_subscriptions = 100").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    bob.subscribe(json!({"target": "message", "customer": "2"}), "b")
        .await;
    let flooder = Client::authorized(&host, "alice-token").await;
    let mut frames: Vec<String> = (0..5_000)
        .map(|i| {
            json!({"type": "subscribe", "room": {"target": "message", "customer": i.to_string()}, "requestId": i.to_string()})
                .to_string()
        })
        .collect();
    // Garbage mixed in: each gets its own error.
    frames.extend((0..500).map(|i| format!("{{\"type\":\"subscribe\",\"requestId\":\"{i}\"")));
    frames.extend((0..500).map(|_| r#"{"type":"unsubscribe","requestId":"nope"}"#.to_owned()));
    let started = Instant::now();
    // At most 256 frames ahead of the replies: a flood the client itself
    // reads the answers to (see `pipelined_burst_*` for one that doesn't).
    let flood = tokio::spawn(pipeline(flooder, frames, 256));
    // Meanwhile bob still gets what is published to him.
    let mut delivered_to_bob = 0;
    while !flood.is_finished() && delivered_to_bob < 20 {
        let (status, _) = host
            .trigger(
                Some(TRIGGER_TOKEN),
                &json!({"rooms": [{"target": "message", "customer": "2"}], "data": delivered_to_bob}).to_string(),
            )
            .await;
        assert_eq!(status, 200);
        let got = bob.next().await;
        assert_eq!(got["data"], delivered_to_bob, "{got}");
        delivered_to_bob += 1;
    }
    let Pipelined { replies, close } = flood.await.unwrap();
    assert_eq!(close, None);
    assert_eq!(replies.len(), 6_000, "every frame got exactly one reply");
    let count = |message: &str| replies.iter().filter(|r| r["message"] == message).count();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for r in &replies {
        *kinds
            .entry(format!("{}/{}", r["code"], r["message"]))
            .or_default() += 1;
    }
    eprintln!("subscribe flood replies: {kinds:?}");
    let successes = replies.iter().filter(|r| r["code"] == "success").count();
    // The first 100 subscribe, customer "2" among them (bob's room too).
    assert_eq!(successes, 100);
    assert_eq!(count("too-many-subscriptions"), 4_900);
    assert_eq!(count("non-json-message"), 500);
    assert_eq!(count("not-subscribed"), 500);
    eprintln!(
        "subscribe flood: 6,000 frames answered in {:?}",
        started.elapsed()
    );
    // The flooder's subscriptions go with its connection.
    crate::harness::eventually("the flooder's subscriptions gone", || {
        host.state.fanout.num_subscriptions() == 1
    })
    .await;
    still_serves(&mut bob).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_flood_is_rate_limited_and_others_keep_calling() {
    let (_ws, host) = host("[limits]\ncalls_per_second = 200\nmax_calls_in_flight = 16").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    // An admin: half the flood is echo's admin-only sleep.
    let flooder = Client::authorized(&host, "admin-token").await;
    let frames: Vec<String> = (0..3_000)
        .map(|i| {
            let (command, params) = if i % 2 == 0 {
                ("echo", json!({"i": i}))
            } else {
                ("sleep", json!({"ms": 20}))
            };
            json!({"type": "call", "module": "echo", "command": command, "params": params, "requestId": i.to_string()})
                .to_string()
        })
        .collect();
    let flood = tokio::spawn(pipeline(flooder, frames, 256));
    // Bob's calls are answered during the flood, promptly.
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let t = Instant::now();
        let reply = bob
            .call("echo", "echo", json!({"bob": i}), &format!("b{i}"))
            .await;
        assert_eq!(reply["result"], json!({"bob": i}), "{reply}");
        slowest = slowest.max(t.elapsed());
    }
    // A figure, not an assertion: a busy machine may be slow, never wrong.
    eprintln!("call flood: bob's slowest call took {slowest:?}");
    let Pipelined { replies, close } = flood.await.unwrap();
    assert_eq!(close, None);
    assert_eq!(replies.len(), 3_000, "every call got exactly one answer");
    let ok = replies.iter().filter(|r| r["type"] == "reply").count();
    let limited = replies
        .iter()
        .filter(|r| r["code"] == "rate-limited")
        .count();
    assert_eq!(ok + limited, 3_000, "only replies and rate-limited errors");
    assert!(limited >= 2_000, "{limited} of 3,000 were limited");
    assert!(ok >= 16, "{ok} of 3,000 were served");
    still_serves(&mut bob).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaced_flooder_is_answered_or_closed_and_others_are_unaffected() {
    let (_ws, host) = host("").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    let flooder = Client::authorized(&host, "alice-token").await;
    let frames: Vec<String> = (0..20_000)
        .map(|i| {
            json!({"type": "call", "module": "echo", "command": "echo", "params": {"i": i}, "requestId": i.to_string()})
                .to_string()
        })
        .collect();
    let flood = tokio::spawn(pipeline(flooder, frames, usize::MAX));
    still_serves(&mut bob).await;
    let Pipelined { replies, close } = flood.await.unwrap();
    // The host stops reading a client whose replies pile up. This one sends
    // without reading, so once the socket buffers are full both sides wait:
    // after a few seconds the host gives up on it (4008, counted as a slow
    // consumer). The close frame may never reach a client that does not
    // read, so the connection may just end. Either way it never hangs the
    // host, and if the buffers were large enough it got every reply.
    let gave_up = host
        .state
        .sessions
        .counters
        .slow_consumers_closed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        replies.len() == 20_000 || (gave_up == 1 && close.is_none_or(|c| c == 4008)),
        "{} replies, close {close:?}, slow consumers closed {gave_up}",
        replies.len()
    );
    eprintln!(
        "unpaced flood of 20,000 calls: {} replies, close {close:?}",
        replies.len()
    );
    still_serves(&mut bob).await;
    let reply = bob.call("echo", "echo", json!({"after": 1}), "a").await;
    assert_eq!(reply["result"], json!({"after": 1}));
    host.stop().await;
}

/// A client that, on connecting, subscribes to as many rooms as it may
/// (1,024) and makes as many calls as it may have in flight (256), in one
/// pipelined burst, and reads nothing until it has sent it all, gets every
/// reply and is never closed. Its receive buffer is tiny and the calls'
/// replies are large (2 KB each), so the host's writer is blocked from the
/// start, as on a machine too busy to run it: the replies must wait in the
/// outbox without overflowing it (replies never count against the
/// slow-consumer bound), and the host must keep reading the burst (it
/// pauses only past a reply window that covers everything the limits
/// allow). Before that, this client was closed with 4008.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_burst_within_the_limits_is_answered() {
    // The real binary (its own multi-threaded runtime), not a test runtime.
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = ProcessHost::start(&ws, "");
    let mut c = Client::connect_small(host.addr, "/ws/?token=alice-token", Some(4096))
        .await
        .unwrap();
    assert_eq!(c.next().await["is_authorized"], true);
    let mut frames: Vec<String> = (0..1_024)
        .map(|i| {
            json!({"type": "subscribe", "room": {"target": "message", "customer": i.to_string()}, "requestId": i.to_string()})
                .to_string()
        })
        .collect();
    let pad = "x".repeat(2_000);
    frames.extend((0..256).map(|i| {
        json!({"type": "call", "module": "echo", "command": "echo", "params": {"pad": pad}, "requestId": i.to_string()})
            .to_string()
    }));
    let Pipelined { replies, close } = pipeline(c, frames, usize::MAX).await;
    assert_eq!(close, None, "closed after {} replies", replies.len());
    assert_eq!(replies.len(), 1_280);
    let calls = replies.iter().filter(|r| r["type"] == "reply").count();
    assert_eq!(calls, 256, "every call answered");
}
