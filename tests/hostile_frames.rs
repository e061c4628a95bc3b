//! Hostile clients and hostile modules (issue 7): the host answers with
//! errors or closes, stays up, keeps its memory bounded, and nobody else is
//! starved. The cases are split by what is hostile: frames (here), floods
//! (`hostile_floods`), connections at scale (`hostile_connections`),
//! modules (`hostile_modules`) and parsed inputs (`hostile_inputs`).
//!
//! Protocol-level abuse runs against a host in this process. Everything
//! that measures memory runs the real `modhost` binary as a child
//! ([`ProcessHost`](crate::harness_process::ProcessHost)), so its RSS is the host's
//! alone, not this test process's (whose other tests run in parallel).
//!
//! This file: malformed UTF-8, oversized and broken framing, deep JSON,
//! control frames; and the in-process host and clients the other
//! `hostile_*` files share.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Client, RawWs, TestHost, Workspace, op};

pub async fn host(extra: &str) -> (Workspace, TestHost) {
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
pub async fn still_serves(c: &mut Client) {
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
    let status = raw.next_json().await.unwrap();
    assert_eq!(status["open_connections"], 2, "{status}");

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

/// RFC 6455 §5.5: control frames carry at most 125 bytes; a longer one is a
/// protocol error (1002). `read_error_close` (gateway/session.rs) matches
/// "too big" for 1009, and the only tungstenite error whose text says "too
/// big" is "Control frame too big": so this closes with 1009. Fix: drop
/// "too big" from the 1009 patterns (oversize messages and frames say "too
/// long"), or match the typed `tungstenite::Error` instead of its text.
#[tokio::test]
async fn control_frame_over_125_bytes_is_a_protocol_error() {
    let (_ws, host) = host("").await;
    let mut raw = raw_alice(&host).await;
    raw.frame(true, op::PING, &[b'x'; 126]).await.unwrap();
    assert_eq!(raw.close_code().await, Some(1002));
    host.stop().await;
}
