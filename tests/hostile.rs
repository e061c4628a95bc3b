//! Hostile clients and hostile modules (issue 7): the host answers with
//! errors or closes, stays up, keeps its memory bounded, and nobody else is
//! starved.
//!
//! Protocol-level abuse runs against a host in this process. Everything
//! that measures memory runs the real `modhost` binary as a child
//! ([`ProcessHost`]), so its RSS is the host's alone, not this test
//! process's (whose other tests run in parallel).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::harness::{
    Client, ProcessHost, ProcessLimits, RawWs, TRIGGER_TOKEN, TestHost, VERSION, Workspace, op,
    raise_nofile,
};

async fn host(extra: &str) -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, extra).await;
    (ws, host)
}

/// A raw client past the hello (authorized as alice).
async fn raw_alice(host: &TestHost) -> RawWs {
    let mut raw = RawWs::connect(host.addr, "/ws/?token=alice-token")
        .await
        .expect("upgrade");
    let hello = raw.next_text().await.expect("hello");
    assert!(hello.contains(r#""is_authorized":true"#), "{hello}");
    let offer = raw.next_text().await.expect("resource offer");
    assert!(offer.contains("resource_offer"), "{offer}");
    raw
}

/// `c` still answers `ping` with `pong`.
async fn still_serves(c: &mut Client) {
    c.send("ping").await;
    assert_eq!(
        c.silent_for(Duration::from_secs(10)).await,
        Some(Value::String("pong".into())),
        "the other client is still served"
    );
}

#[tokio::test]
async fn malformed_utf8_closes_with_1007_and_others_are_unaffected() {
    let (_ws, host) = host("").await;
    let mut other = Client::authorized(&host, "bob-token").await;

    // Invalid bytes in a single text frame.
    let mut raw = raw_alice(&host).await;
    raw.frame(true, op::TEXT, b"{\"type\":\"\xff\xfe\"}")
        .await
        .unwrap();
    assert_eq!(raw.close_code().await, Some(1007));

    // A valid 4-byte sequence cut between two fragments, then an invalid
    // continuation byte.
    let mut raw = raw_alice(&host).await;
    raw.frame(false, op::TEXT, b"{\"a\":\"\xf0\x9f")
        .await
        .unwrap();
    raw.frame(true, op::CONT, b"\x28\"}").await.unwrap();
    assert_eq!(raw.close_code().await, Some(1007));

    // Overlong encoding of '/' and a UTF-16 surrogate: both invalid UTF-8.
    for bad in [&b"\xc0\xaf"[..], &b"\xed\xa0\x80"[..]] {
        let mut raw = raw_alice(&host).await;
        raw.frame(true, op::TEXT, bad).await.unwrap();
        assert_eq!(raw.close_code().await, Some(1007));
    }

    // A close frame whose reason is not UTF-8 is a protocol error too.
    let mut raw = raw_alice(&host).await;
    raw.frame(true, op::CLOSE, b"\x03\xe8\xff\xff")
        .await
        .unwrap();
    assert!(
        matches!(raw.close_code().await, Some(1002 | 1007) | None),
        "bad close reason is refused"
    );

    still_serves(&mut other).await;
    host.stop().await;
}

#[tokio::test]
async fn oversized_frames_close_with_1009_without_reading_them() {
    let (_ws, host) = host("[limits]\nmax_frame_bytes = 4096").await;
    let mut other = Client::authorized(&host, "bob-token").await;

    // A header that claims 1 GiB: refused from the header alone.
    let mut raw = raw_alice(&host).await;
    raw.header_only(true, op::TEXT, 1 << 30).await.unwrap();
    assert_eq!(raw.close_code().await, Some(1009));

    // The largest length the header can carry.
    let mut raw = raw_alice(&host).await;
    raw.header_only(true, op::BINARY, u64::MAX >> 1)
        .await
        .unwrap();
    assert_eq!(raw.close_code().await, Some(1009));

    // Small fragments adding up to more than the message limit.
    let mut raw = raw_alice(&host).await;
    let piece = vec![b' '; 1000];
    raw.frame(false, op::TEXT, &piece).await.unwrap();
    for _ in 0..9 {
        if raw.frame(false, op::CONT, &piece).await.is_err() {
            break;
        }
    }
    assert_eq!(raw.close_code().await, Some(1009));

    // Exactly at the limit is fine.
    let mut raw = raw_alice(&host).await;
    let mut frame = b"{\"type\":\"x\",\"pad\":\"".to_vec();
    frame.resize(4096 - 2, b'a');
    frame.extend_from_slice(b"\"}");
    raw.frame(true, op::TEXT, &frame).await.unwrap();
    assert_eq!(raw.next_json().await.unwrap()["code"], "error");

    still_serves(&mut other).await;
    host.stop().await;
}

#[tokio::test]
async fn fragmented_and_broken_framing() {
    let (_ws, host) = host("").await;
    let mut other = Client::authorized(&host, "bob-token").await;

    // A subscribe in three fragments with a ping between them: the ping is
    // answered at once, the message when complete.
    let mut raw = raw_alice(&host).await;
    let text =
        br#"{"type":"subscribe","room":{"target":"message","customer":"1"},"requestId":"f"}"#;
    raw.frame(false, op::TEXT, &text[..10]).await.unwrap();
    raw.frame(true, op::PING, b"hi").await.unwrap();
    raw.frame(false, op::CONT, &text[10..40]).await.unwrap();
    raw.frame(true, op::CONT, &text[40..]).await.unwrap();
    let (opcode, payload) = raw.read_frame(Duration::from_secs(10)).await.unwrap();
    assert_eq!((opcode, payload.as_slice()), (op::PONG, &b"hi"[..]));
    assert_eq!(
        raw.next_json().await.unwrap(),
        json!({"code": "success", "requestId": "f"})
    );

    // 2,000 one-byte fragments make one frame.
    let status = br#"{"type":"status"}"#;
    let mut padded = status.to_vec();
    padded.resize(2000, b' ');
    raw.frame(false, op::TEXT, &padded[..1]).await.unwrap();
    for b in &padded[1..padded.len() - 1] {
        raw.frame(false, op::CONT, std::slice::from_ref(b))
            .await
            .unwrap();
    }
    raw.frame(true, op::CONT, &padded[padded.len() - 1..])
        .await
        .unwrap();
    assert_eq!(
        raw.next_json().await.unwrap(),
        json!({"code": "error", "message": "forbidden"})
    );

    // Each of these breaks RFC 6455 and closes with 1002.
    type Bad = fn(&mut Vec<(bool, u8, Vec<u8>)>);
    let cases: [(&str, Bad); 5] = [
        ("continuation without a start", |f| {
            f.push((true, op::CONT, b"{}".to_vec()))
        }),
        ("new message inside a fragmented one", |f| {
            f.push((false, op::TEXT, b"{".to_vec()));
            f.push((true, op::TEXT, b"{}".to_vec()));
        }),
        ("fragmented ping", |f| {
            f.push((false, op::PING, b"x".to_vec()))
        }),
        ("reserved opcode 3", |f| f.push((true, 0x3, b"x".to_vec()))),
        ("reserved opcode 0xB", |f| f.push((true, 0xB, Vec::new()))),
    ];
    for (what, build) in cases {
        let mut raw = raw_alice(&host).await;
        let mut frames = Vec::new();
        build(&mut frames);
        for (fin, opcode, payload) in frames {
            let _ = raw.frame(fin, opcode, &payload).await;
        }
        assert_eq!(raw.close_code().await, Some(1002), "{what}");
    }

    // RSV bits without a negotiated extension; an unmasked client frame.
    for bytes in [
        &[0xC1u8, 0x80, 1, 2, 3, 4][..],
        &[0x81u8, 0x02, b'{', b'}'][..],
    ] {
        let mut raw = raw_alice(&host).await;
        tokio::io::AsyncWriteExt::write_all(&mut raw.stream, bytes)
            .await
            .unwrap();
        assert_eq!(raw.close_code().await, Some(1002), "{bytes:x?}");
    }

    still_serves(&mut other).await;
    host.stop().await;
}

#[tokio::test]
async fn deep_json_gets_an_error_and_the_connection_stays() {
    let (_ws, host) = host("").await;
    let mut c = Client::authorized(&host, "alice-token").await;
    // 60,000 levels of arrays, then of objects: refused by a byte scan
    // before any parser recurses.
    c.send(&"[".repeat(60_000)).await;
    assert_eq!(
        c.next().await,
        json!({"code": "error", "message": "too-deep"})
    );
    c.send(&"{\"a\":".repeat(12_000)).await;
    assert_eq!(c.next().await["message"], "too-deep");
    // Deep inside a call's params: refused before reaching the module.
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    c.send(&format!(
        r#"{{"type":"call","module":"echo","command":"echo","params":{{"x":{deep}}},"requestId":"d"}}"#
    ))
    .await;
    assert_eq!(c.next().await["message"], "too-deep");
    // Just inside the limit (32 with the frame itself) reaches the module.
    let ok = format!("{}1{}", "[".repeat(29), "]".repeat(29));
    c.send(&format!(
        r#"{{"type":"call","module":"echo","command":"echo","params":{{"x":{ok}}},"requestId":"ok"}}"#
    ))
    .await;
    let reply = c.next().await;
    assert_eq!(reply["type"], "reply", "{reply}");
    // Deep rooms too.
    c.send(&format!(
        r#"{{"type":"subscribe","room":{{"target":{deep}}},"requestId":"r"}}"#
    ))
    .await;
    assert_eq!(c.next().await["message"], "too-deep");
    still_serves(&mut c).await;
    host.stop().await;
}

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
    for _ in 0..200 {
        if host.state.fanout.num_subscriptions() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(host.state.fanout.num_subscriptions(), 1);
    still_serves(&mut bob).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_flood_is_rate_limited_and_others_keep_calling() {
    let (_ws, host) = host("[limits]\ncalls_per_second = 200\nmax_calls_in_flight = 16").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    let flooder = Client::authorized(&host, "alice-token").await;
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
    assert!(
        slowest < Duration::from_secs(2),
        "bob waited {slowest:?} for a call"
    );
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
    // Today the flooder is closed as a slow consumer (its own replies fill
    // its outbox); with read backpressure it would get every reply.
    assert!(
        replies.len() == 20_000 || close == Some(4008),
        "{} replies, close {close:?}",
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
/// pipelined burst while reading, is closed with 4008 before it gets most
/// replies: the session reads frames without backpressure, so its own
/// replies overflow its outbox (`send_queue` = 1,024) whenever the writer
/// task does not get to run in between (it sits in the reader's worker's
/// LIFO slot while buffered frames keep the reader busy). Fix
/// (gateway/session.rs, gateway owner): stop reading client frames while
/// the outbox is nearly full (`msg = stream.next(), if outbox.capacity() >
/// RESERVE`, plus a branch that awaits capacity), so replies pace the
/// reader and only room messages can make a client "too slow".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "host bug (gateway/session.rs): a pipelined burst within the limits is closed 4008; see the issue 7 report"]
async fn pipelined_burst_within_the_limits_is_answered() {
    let (_ws, host) = host("").await;
    let c = Client::authorized(&host, "alice-token").await;
    let mut frames: Vec<String> = (0..1_024)
        .map(|i| {
            json!({"type": "subscribe", "room": {"target": "message", "customer": i.to_string()}, "requestId": i.to_string()})
                .to_string()
        })
        .collect();
    frames.extend((0..256).map(|i| {
        json!({"type": "call", "module": "echo", "command": "echo", "params": {}, "requestId": i.to_string()})
            .to_string()
    }));
    let Pipelined { replies, close } = pipeline(c, frames, usize::MAX).await;
    assert_eq!(close, None, "closed after {} replies", replies.len());
    assert_eq!(replies.len(), 1_280);
    host.stop().await;
}

/// RFC 6455 §5.5: control frames carry at most 125 bytes; a longer one is a
/// protocol error (1002). `read_error_close` (gateway/session.rs) matches
/// "too big" for 1009, and the only tungstenite error whose text says "too
/// big" is "Control frame too big": so this closes with 1009. Fix: drop
/// "too big" from the 1009 patterns (oversize messages and frames say "too
/// long"), or match the typed `tungstenite::Error` instead of its text.
#[tokio::test]
#[ignore = "host bug (gateway/session.rs): an oversize control frame closes with 1009, not 1002; see the issue 7 report"]
async fn control_frame_over_125_bytes_is_a_protocol_error() {
    let (_ws, host) = host("").await;
    let mut raw = raw_alice(&host).await;
    raw.frame(true, op::PING, &[b'x'; 126]).await.unwrap();
    assert_eq!(raw.close_code().await, Some(1002));
    host.stop().await;
}
