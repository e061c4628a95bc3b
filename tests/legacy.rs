//! high-templar 3.1's dialect, for clients that offer no subprotocol: every
//! frame compared exactly, written from high-templar's documented and
//! tested behaviour (its own suite's scenarios, not its code), one test per
//! way modhost once broke in-order high-templar clients.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Client, TRIGGER_TOKEN, TestHost, Workspace};

async fn start(extra: &str) -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, extra).await;
    (ws, host)
}

/// A client of high-templar: no subprotocol, reads its first frame.
async fn legacy(host: &TestHost, token: &str) -> (Client, Value) {
    let mut c = Client::connect_legacy(&format!("ws://{}/ws/?token={token}", host.addr)).await;
    let hello = json_of(&c.next_text().await);
    (c, hello)
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// The next frame, exactly as sent (no frame is skipped).
async fn next(c: &mut Client) -> Value {
    json_of(&c.next_text().await)
}

async fn send(c: &mut Client, frame: Value) -> Value {
    c.send_json(frame).await;
    next(c).await
}

async fn status(c: &mut Client) -> Value {
    send(c, json!({"type": "status"})).await
}

fn room(customer: &str) -> Value {
    json!({"target": "message", "customer": customer})
}

async fn trigger(host: &TestHost, rooms: Value, data: Value) {
    let body = json!({"rooms": rooms, "data": data}).to_string();
    let (code, text) = host.trigger(Some(TRIGGER_TOKEN), &body).await;
    assert_eq!(code, 200, "{text}");
}

/// Causes 1 and 2: the first frame is exactly high-templar's, and nothing
/// follows it unasked (no resource offer): the answer to `ping` is next.
#[tokio::test]
async fn the_first_frame_is_high_templars_and_nothing_follows_unasked() {
    let (_ws, host) = start("").await;
    let (mut c, hello) = legacy(&host, "alice-token").await;
    assert_eq!(
        hello,
        json!({"is_authorized": true, "allowed_rooms": [
            {"target": "message", "customer": "*"},
            {"target": "notes", "user": "alice"},
            {"target": "flood"},
        ]})
    );
    c.send("ping").await;
    assert_eq!(c.next_text().await, "pong");
    host.stop().await;
}

/// Cause 3: `{"code": …}` replies carry no `requestId`; the two replies to
/// unreadable frames name the connection, as high-templar's do.
#[tokio::test]
async fn code_replies_are_high_templars_exactly() {
    let (_ws, host) = start("").await;
    let (mut c, _) = legacy(&host, "alice-token").await;
    let sub = |rid: &str, customer: &str| json!({"type": "subscribe", "room": room(customer), "requestId": rid});
    assert_eq!(
        send(&mut c, sub("a", "1")).await,
        json!({"code": "success"})
    );
    assert_eq!(
        send(&mut c, json!({"type": "subscribe", "room": {"target": "foobar", "customer": "2"}, "requestId": "b"})).await,
        json!({"code": "error", "message": "room-not-found"})
    );
    assert_eq!(
        send(&mut c, json!({"type": "subscribe", "room": room("1")})).await,
        json!({"code": "error", "message": "no-request-id"})
    );
    let unsub = json!({"type": "unsubscribe", "requestId": "a"});
    assert_eq!(
        send(&mut c, unsub.clone()).await,
        json!({"code": "success"})
    );
    assert_eq!(
        send(&mut c, unsub).await,
        json!({"code": "error", "message": "not-subscribed"})
    );
    assert_eq!(
        send(&mut c, json!({"type": "unsubscribe", "room": room("1")})).await,
        json!({"code": "error", "message": "no-request-id"})
    );
    c.send("geen json").await;
    let reply = next(&mut c).await;
    let connection = reply["requestId"].as_str().expect("names the connection");
    assert_eq!(
        reply,
        json!({"requestId": connection, "code": "error", "message": "non-json-message"})
    );
    assert_eq!(
        send(&mut c, json!({"type": "foobar"})).await,
        json!({"requestId": connection, "code": "error", "message": "message-type-not-allowed"})
    );
    host.stop().await;
}

/// Cause 4: every client may ask for the counters, in high-templar's
/// fields; `[gateway] status` narrows that.
#[tokio::test]
async fn status_answers_every_client_in_high_templars_fields() {
    let (_ws, host) = start("").await;
    let (mut c, _) = legacy(&host, "alice-token").await;
    let s = status(&mut c).await;
    let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "num_rooms",
            "online_since",
            "open_connections",
            "rabbitmq_messages_received",
            "ws_messages_received",
            "ws_messages_send",
            "ws_messages_send_error",
            "ws_messages_send_queued",
        ]
    );
    assert_eq!(
        (&s["open_connections"], &s["num_rooms"]),
        (&json!(1), &json!(0))
    );
    // Python's datetime.isoformat(): 2026-11-29T17:44:41.123456
    let since = s["online_since"].as_str().unwrap();
    assert_eq!(since.len(), 26, "{since}");
    assert_eq!(
        (&since[4..5], &since[10..11], &since[19..20]),
        ("-", "T", ".")
    );
    host.stop().await;

    for (access, alice, root) in [("admins", false, true), ("off", false, false)] {
        let (_ws, host) = start(&format!("[gateway]\nstatus = \"{access}\"")).await;
        for (token, allowed) in [("alice-token", alice), ("admin-token", root)] {
            let (mut c, _) = legacy(&host, token).await;
            let s = status(&mut c).await;
            if allowed {
                assert_eq!(s["open_connections"], 1, "{access} {token}: {s}");
            } else {
                assert_eq!(
                    s,
                    json!({"code": "error", "message": "forbidden"}),
                    "{access} {token}"
                );
            }
            c.close().await;
        }
        host.stop().await;
    }
}

/// Cause 5: a refused client is told so and closed normally (1000); a
/// `modhost.v1` client still gets 4001.
#[tokio::test]
async fn a_refused_client_is_told_and_closed_normally() {
    let (_ws, host) = start("").await;
    let (mut c, hello) = legacy(&host, "wrong-token").await;
    assert_eq!(hello, json!({"is_authorized": false}));
    assert_eq!(c.close_code().await, Some(1000));
    let (mut c, hello) = Client::hello(&host, "wrong-token", "").await;
    assert_eq!(hello, json!({"is_authorized": false}));
    assert_eq!(c.close_code().await, Some(4001));
    host.stop().await;
}

/// Cause 6: high-templar's load test: one connection in 1,500 rooms with
/// the default limits, a message in each, all rooms gone when it leaves.
#[tokio::test]
async fn one_connection_in_1500_rooms_with_the_default_limits() {
    let (_ws, host) = start("").await;
    let (mut watcher, _) = legacy(&host, "alice-token").await;
    let (mut c, _) = legacy(&host, "alice-token").await;
    for i in 0..1500 {
        let frame =
            json!({"type": "subscribe", "room": room(&i.to_string()), "requestId": i.to_string()});
        assert_eq!(
            send(&mut c, frame).await,
            json!({"code": "success"}),
            "room {i}"
        );
    }
    let s = status(&mut watcher).await;
    assert_eq!(
        (&s["num_rooms"], &s["open_connections"]),
        (&json!(1500), &json!(2))
    );
    for i in [0, 749, 1499] {
        let customer = i.to_string();
        trigger(
            &host,
            json!([room(&customer)]),
            json!({"customer": customer}),
        )
        .await;
        assert_eq!(
            next(&mut c).await,
            json!({"type": "publish", "data": {"customer": customer}, "requestId": customer})
        );
    }
    c.close().await;
    let s = status(&mut watcher).await;
    assert_eq!(
        (&s["num_rooms"], &s["open_connections"]),
        (&json!(0), &json!(1))
    );
    host.stop().await;
}

/// Causes 8 and 9: a client's close frame is answered (in both dialects),
/// and the host no longer counts the client, nor its rooms, once it has
/// the answer.
#[tokio::test]
async fn a_close_is_answered_and_the_client_is_uncounted_by_then() {
    let (_ws, host) = start("").await;
    let (mut watcher, _) = legacy(&host, "alice-token").await;
    for round in 0..20 {
        let extended = round % 2 == 1;
        let url = format!("ws://{}/ws/?token=alice-token", host.addr);
        let mut c = if extended {
            Client::connect(&url).await
        } else {
            Client::connect_legacy(&url).await
        };
        c.next_text().await;
        c.subscribe(room("1"), "r").await;
        let s = status(&mut watcher).await;
        assert_eq!(
            (&s["num_rooms"], &s["open_connections"]),
            (&json!(1), &json!(2))
        );

        c.ws.send(Message::Close(None)).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), c.ws.next()).await;
        assert!(
            matches!(answer, Ok(Some(Ok(Message::Close(_))))),
            "round {round} (extended: {extended}): the close was not answered: {answer:?}"
        );
        let s = status(&mut watcher).await;
        assert_eq!(
            (&s["num_rooms"], &s["open_connections"]),
            (&json!(0), &json!(1)),
            "round {round}: counted after its close was answered"
        );
    }
    host.stop().await;
}

/// high-templar's message scenarios: a publish reaches each subscriber
/// with its own `requestId`, a publish to several rooms reaches the one
/// subscribed, and nothing reaches a room not published to.
#[tokio::test]
async fn publishes_arrive_in_high_templars_shape_and_only_where_subscribed() {
    let (_ws, host) = start("").await;
    let (mut a, _) = legacy(&host, "alice-token").await;
    let (mut b, _) = legacy(&host, "alice-token").await;
    let (mut other, _) = legacy(&host, "bob-token").await;
    for (c, rid) in [(&mut a, "ra"), (&mut b, "rb")] {
        let frame = json!({"type": "subscribe", "room": room("1"), "requestId": rid});
        assert_eq!(send(c, frame).await, json!({"code": "success"}));
    }
    let frame = json!({"type": "subscribe", "room": room("2"), "requestId": "ro"});
    assert_eq!(send(&mut other, frame).await, json!({"code": "success"}));

    let rooms = json!([room("1"), {"target": "room-without-subscribers", "customer": "x"}]);
    trigger(&host, rooms, json!({"foo": "bar"})).await;
    for (c, rid) in [(&mut a, "ra"), (&mut b, "rb")] {
        assert_eq!(
            next(c).await,
            json!({"type": "publish", "data": {"foo": "bar"}, "requestId": rid})
        );
    }
    assert_eq!(other.silent_for(Duration::from_millis(500)).await, None);
    host.stop().await;
}

/// Frames high-templar does not know still work, answered in modhost's
/// shape; a dropped legacy session is not kept for resuming (it was given
/// no token to resume with).
#[tokio::test]
async fn calls_work_and_dropped_sessions_are_not_parked() {
    let (_ws, host) = start("").await;
    let (mut c, _) = legacy(&host, "alice-token").await;
    let call = json!({"type": "call", "module": "echo", "command": "echo", "params": {"x": 1}, "requestId": "7"});
    assert_eq!(
        send(&mut c, call).await,
        json!({"type": "reply", "requestId": "7", "result": {"x": 1}})
    );
    drop(c);
    let sessions = &host.state.sessions;
    crate::harness::eventually("the dropped session is gone", || sessions.list().is_empty()).await;
    assert_eq!(sessions.parked(), 0);
    host.stop().await;
}

/// A stopping host closes high-templar clients with 1001 and the words
/// they always got; the reconnect hint is `modhost.v1`'s alone.
#[tokio::test]
async fn a_stopping_host_closes_legacy_clients_with_the_plain_reason() {
    let (_ws, host) = start("").await;
    let (mut c, hello) = legacy(&host, "alice-token").await;
    assert_eq!(hello["is_authorized"], true);
    host.stop().await;
    assert_eq!(
        c.close_frame().await,
        Some((1001, "server shutting down".to_owned()))
    );
}
