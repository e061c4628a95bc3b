//! The websocket gateway's limits: oversize frames and publishes, clients
//! that never read, and clients pipelining requests.

use std::time::Duration;

use serde_json::{Value, json};

use crate::gateway::{host, trigger};
use crate::harness::{Client, TRIGGER_TOKEN, TestHost, Workspace};

#[tokio::test]
async fn oversize_frame_closes_only_that_connection() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "[limits]\nmax_frame_bytes = 1024").await;
    let mut big = Client::authorized(&host, "alice-token").await;
    let mut other = Client::authorized(&host, "bob-token").await;
    big.send(&format!(
        "{{\"type\":\"x\",\"pad\":\"{}\"}}",
        "a".repeat(4096)
    ))
    .await;
    assert_eq!(big.close_code().await, Some(1009));
    other.send("ping").await;
    assert_eq!(
        other.silent_for(Duration::from_secs(5)).await,
        Some(Value::String("pong".into()))
    );
    host.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_while_others_keep_receiving() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "[limits]\nsend_queue = 64").await;
    let mut stuck = Client::authorized(&host, "alice-token").await;
    stuck
        .subscribe(json!({"target": "message", "customer": "2"}), "s")
        .await;
    let mut reader = Client::authorized(&host, "bob-token").await;
    reader
        .subscribe(json!({"target": "message", "customer": "2"}), "r")
        .await;
    let payload = "x".repeat(16 * 1024);
    let rooms = json!([{"target": "message", "customer": "2"}]);
    let reading = tokio::spawn(async move {
        let mut n = 0;
        while n < 2000 {
            let v = reader.next().await;
            assert_eq!(v["requestId"], "r");
            n += 1;
        }
        n
    });
    for i in 0..2000 {
        trigger(&host, rooms.clone(), json!({"i": i, "pad": payload})).await;
    }
    assert_eq!(
        reading.await.unwrap(),
        2000,
        "the reading client got every message"
    );
    let counters = &host.state.sessions.counters;
    assert!(
        counters
            .slow_consumers_closed
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // The stuck client eventually sees the end of its connection.
    let mut saw_close = false;
    for _ in 0..5000 {
        match tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::StreamExt::next(&mut stuck.ws),
        )
        .await
        {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f)))) => {
                assert_eq!(f.map(|f| u16::from(f.code)), Some(4008));
                saw_close = true;
                break;
            }
            Ok(Some(Ok(_))) => continue,
            _ => {
                saw_close = true;
                break;
            }
        }
    }
    assert!(saw_close);
    host.stop().await;
}

#[tokio::test]
async fn a_large_publish_reaches_subscribers_and_an_oversize_one_is_refused() {
    let (_ws, host) = host().await;
    let mut c = Client::authorized(&host, "alice-token").await;
    c.subscribe(json!({"target": "message", "customer": "1"}), "big")
        .await;
    let pad = "x".repeat(900 * 1024);
    let body = json!({"rooms": [{"target": "message", "customer": "1"}], "data": pad}).to_string();
    let (status, text) = host.trigger(Some(TRIGGER_TOKEN), &body).await;
    assert_eq!((status, text.as_str()), (200, r#"{"delivered":1}"#));
    let got = c.next().await;
    assert_eq!(got["data"].as_str().map(str::len), Some(900 * 1024));
    let too_big =
        json!({"rooms": [{"target": "message", "customer": "1"}], "data": "y".repeat(1100 * 1024)});
    assert_eq!(
        host.trigger(Some(TRIGGER_TOKEN), &too_big.to_string())
            .await
            .0,
        413
    );
    host.stop().await;
}

#[tokio::test]
async fn a_module_cannot_publish_past_the_size_limit() {
    // Params may be large here, so the limit hit is the publish's own.
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "[limits]\nmax_params_bytes = 2097152").await;
    let rooms = json!([{"target": "message", "customer": "1"}]);
    let (status, body) = host
        .call(
            "echo",
            "publish",
            json!({"rooms": rooms, "data": "z".repeat(1100 * 1024)}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too-large");
    host.stop().await;
}

#[tokio::test]
async fn a_client_pipelining_requests_is_slowed_not_closed() {
    use futures_util::SinkExt;
    let (_ws, host) = host().await;
    let mut c = Client::authorized(&host, "alice-token").await;
    // Three outboxes' worth of requests before reading a single reply.
    for _ in 0..3_000 {
        c.ws.feed(tokio_tungstenite::tungstenite::Message::text("ping"))
            .await
            .unwrap();
    }
    c.ws.flush().await.unwrap();
    let mut pongs = 0;
    while pongs < 3_000 {
        let frame = c.next_text_within(Duration::from_secs(10)).await;
        let frame = frame.unwrap_or_else(|| panic!("closed after {pongs} pongs"));
        if frame.contains("resource_offer") {
            continue;
        }
        assert_eq!(frame, "pong");
        pongs += 1;
    }
    let counters = &host.state.sessions.counters;
    assert_eq!(
        counters
            .slow_consumers_closed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    host.stop().await;
}
