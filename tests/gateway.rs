//! The websocket gateway: high-templar's suite and the extensions of
//! DESIGN §5 (rooms, fan-out, triggers, status, metrics). Each auth mode
//! is in `gateway_auth`, the limits in `gateway_limits`; both use the
//! helpers here.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Client, TRIGGER_TOKEN, TestHost, Workspace, http};

pub async fn host() -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "").await;
    (ws, host)
}

pub async fn trigger(host: &TestHost, rooms: Value, data: Value) -> u64 {
    let (status, body) = host
        .trigger(
            Some(TRIGGER_TOKEN),
            &json!({"rooms": rooms, "data": data}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["delivered"]
        .as_u64()
        .unwrap()
}

async fn num_rooms(host: &TestHost) -> usize {
    let resp = http()
        .get(host.url("/api/rooms"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    resp.json::<Vec<Value>>().await.unwrap().len()
}

#[tokio::test]
async fn connect_authorized_and_refused() {
    let (_ws, host) = host().await;
    let mut c = host.ws("alice-token").await;
    let hello = c.next_text().await;
    let hello: Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["is_authorized"], true);
    assert_eq!(hello["user"], "alice");
    assert!(hello["session"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        hello["allowed_rooms"][0],
        json!({"target": "message", "customer": "*"})
    );
    let offer: Value = serde_json::from_str(&c.next_text().await).unwrap();
    assert_eq!(offer["type"], "resource_offer");
    let names: Vec<&str> = offer["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"notes"),
        "{offer}"
    );

    let mut refused = host.ws("wrong-token").await;
    assert_eq!(refused.next_text().await, r#"{"is_authorized":false}"#);
    assert_eq!(refused.close_code().await, Some(4001));
    host.stop().await;
}

#[tokio::test]
async fn ping_unknown_type_and_non_json() {
    let (_ws, host) = host().await;
    let mut c = Client::authorized(&host, "alice-token").await;
    c.send("ping").await;
    assert_eq!(
        c.silent_for(Duration::from_secs(5)).await,
        Some(Value::String("pong".into()))
    );
    c.send_json(json!({"type": "dance"})).await;
    assert_eq!(
        c.next().await,
        json!({"code": "error", "message": "message-type-not-allowed"})
    );
    c.send("{not json").await;
    assert_eq!(
        c.next().await,
        json!({"code": "error", "message": "non-json-message"})
    );
    c.send(&"[".repeat(10_000)).await;
    assert_eq!(c.next().await["code"], "error");
    // Still connected and serving.
    c.send("ping").await;
    assert_eq!(
        c.silent_for(Duration::from_secs(5)).await,
        Some(Value::String("pong".into()))
    );
    host.stop().await;
}

#[tokio::test]
async fn subscribe_rules_and_request_ids() {
    let (_ws, host) = host().await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let ok = c
        .subscribe(json!({"target": "message", "customer": "1"}), "1")
        .await;
    assert_eq!(ok, json!({"code": "success", "requestId": "1"}));
    let wildcard = c
        .subscribe(json!({"customer": "*", "target": "message"}), "2")
        .await;
    assert_eq!(wildcard, json!({"code": "success", "requestId": "2"}));
    let denied = c
        .subscribe(json!({"target": "secret", "customer": "1"}), "3")
        .await;
    assert_eq!(
        denied,
        json!({"code": "error", "message": "room-not-found", "requestId": "3"})
    );
    let extra_key = c
        .subscribe(json!({"target": "message", "customer": "1", "x": 1}), "4")
        .await;
    assert_eq!(extra_key["message"], "room-not-found");
    let in_use = c
        .subscribe(json!({"target": "message", "customer": "5"}), "1")
        .await;
    assert_eq!(
        in_use,
        json!({"code": "error", "message": "request-id-in-use", "requestId": "1"})
    );
    c.send_json(json!({"type": "subscribe", "requestId": "5"}))
        .await;
    assert_eq!(
        c.next().await,
        json!({"code": "error", "message": "invalid-room", "requestId": "5"})
    );
    c.send_json(json!({"type": "subscribe", "room": "message", "requestId": "6"}))
        .await;
    assert_eq!(c.next().await["message"], "invalid-room");
    c.send_json(json!({"type": "subscribe", "room": {"target": "message", "customer": "1"}}))
        .await;
    assert_eq!(
        c.next().await,
        json!({"code": "error", "message": "no-request-id"})
    );
    c.send_json(json!({"type": "unsubscribe"})).await;
    assert_eq!(
        c.next().await,
        json!({"code": "error", "message": "no-request-id"})
    );
    c.send_json(json!({"type": "unsubscribe", "requestId": "1"}))
        .await;
    assert_eq!(c.next().await, json!({"code": "success", "requestId": "1"}));
    c.send_json(json!({"type": "unsubscribe", "requestId": "1"}))
        .await;
    assert_eq!(
        c.next().await,
        json!({"code": "error", "message": "not-subscribed", "requestId": "1"})
    );
    // Numeric requestIds are echoed as given (string form).
    let numeric = c
        .subscribe(json!({"target": "message", "customer": "9"}), "77")
        .await;
    assert_eq!(numeric["requestId"], "77");
    host.stop().await;
}

#[tokio::test]
async fn publish_reaches_exactly_the_matching_subscriptions() {
    let (_ws, host) = host().await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    alice
        .subscribe(json!({"target": "message", "customer": "1"}), "a1")
        .await;
    alice
        .subscribe(json!({"target": "message", "customer": "*"}), "aall")
        .await;
    bob.subscribe(json!({"target": "message", "customer": "2"}), "b2")
        .await;

    // One room: alice's customer 1 and her wildcard subscription.
    assert_eq!(
        trigger(
            &host,
            json!([{"target": "message", "customer": "1"}]),
            json!({"n": 1})
        )
        .await,
        2
    );
    let mut got = [alice.next().await, alice.next().await];
    got.sort_by_key(|v| v["requestId"].as_str().unwrap().to_owned());
    assert_eq!(
        got[0],
        json!({"type": "publish", "data": {"n": 1}, "requestId": "a1"})
    );
    assert_eq!(
        got[1],
        json!({"type": "publish", "data": {"n": 1}, "requestId": "aall"})
    );
    assert_eq!(
        bob.silent_for(Duration::from_millis(300)).await,
        None,
        "nothing leaks to bob"
    );

    // Several rooms matching one subscription: delivered once.
    let delivered = trigger(
        &host,
        json!([{"target": "message", "customer": "2"}, {"target": "message", "customer": "3"}]),
        json!("multi"),
    )
    .await;
    assert_eq!(delivered, 2, "bob once, alice's wildcard once");
    assert_eq!(
        bob.next().await,
        json!({"type": "publish", "data": "multi", "requestId": "b2"})
    );
    assert_eq!(alice.next().await["requestId"], "aall");
    assert_eq!(
        alice.silent_for(Duration::from_millis(300)).await,
        None,
        "no duplicate for alice"
    );

    // A publish to customer "*" reaches every customer's subscribers.
    assert_eq!(
        trigger(
            &host,
            json!([{"target": "message", "customer": "*"}]),
            json!(3)
        )
        .await,
        3
    );
    assert_eq!(bob.next().await["data"], 3);
    let mut got = [alice.next().await, alice.next().await];
    got.sort_by_key(|v| v["requestId"].as_str().unwrap().to_owned());
    assert_eq!(
        (got[0]["requestId"].as_str(), got[1]["requestId"].as_str()),
        (Some("a1"), Some("aall"))
    );
    // Type-sensitive: customer 2 (a number) is another room than "2".
    assert_eq!(
        trigger(
            &host,
            json!([{"target": "message", "customer": 2}]),
            json!(4)
        )
        .await,
        1
    );
    assert_eq!(alice.next().await["requestId"], "aall");
    assert_eq!(bob.silent_for(Duration::from_millis(300)).await, None);
    host.stop().await;
}

#[tokio::test]
async fn rooms_disappear_after_unsubscribe_and_disconnect() {
    let (_ws, host) = host().await;
    let mut a = Client::authorized(&host, "alice-token").await;
    let mut b = Client::authorized(&host, "bob-token").await;
    a.subscribe(json!({"target": "message", "customer": "2"}), "1")
        .await;
    b.subscribe(json!({"target": "message", "customer": "2"}), "1")
        .await;
    a.subscribe(json!({"target": "message", "customer": "7"}), "2")
        .await;
    assert_eq!(num_rooms(&host).await, 2);
    a.send_json(json!({"type": "unsubscribe", "requestId": "2"}))
        .await;
    a.next().await;
    assert_eq!(num_rooms(&host).await, 1);
    a.close().await;
    b.close().await;
    // Closed sessions leave their rooms once the server has seen the close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while num_rooms(&host).await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rooms left after close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.stop().await;
}

/// `status` answers every client by default (high-templar's behaviour),
/// in the extended dialect with modhost's own counters too.
#[tokio::test]
async fn status_answers_every_client_by_default() {
    let (_ws, host) = host().await;
    let mut user = Client::authorized(&host, "alice-token").await;
    user.send_json(json!({"type": "status"})).await;
    let status = user.next().await;
    assert_eq!(status["open_connections"], 1, "{status}");
    assert_eq!(status["num_subscriptions"], 0, "{status}");
    let mut admin = Client::authorized(&host, "admin-token").await;
    admin
        .subscribe(json!({"target": "x", "customer": "1"}), "1")
        .await;
    user.send_json(json!({"type": "status"})).await;
    let status = user.next().await;
    assert_eq!(status["open_connections"], 2, "{status}");
    assert_eq!(status["num_rooms"], 1, "{status}");
    host.stop().await;
}

#[tokio::test]
async fn trigger_needs_a_token_and_a_valid_body() {
    let (_ws, host) = host().await;
    let body = json!({"rooms": [{"target": "message", "customer": "1"}], "data": 1}).to_string();
    assert_eq!(host.trigger(None, &body).await.0, 401);
    assert_eq!(host.trigger(Some("nope"), &body).await.0, 401);
    assert_eq!(host.trigger(Some(TRIGGER_TOKEN), "{bad").await.0, 400);
    let (status, text) = host.trigger(Some(TRIGGER_TOKEN), r#"{"data": 1}"#).await;
    assert_eq!((status, text.as_str()), (400, "rooms not specified"));
    let (status, text) = host
        .trigger(Some(TRIGGER_TOKEN), r#"{"rooms": [{"a": "b"}]}"#)
        .await;
    assert_eq!((status, text.as_str()), (400, "data not specified"));
    let (status, text) = host.trigger(Some(TRIGGER_TOKEN), &body).await;
    assert_eq!((status, text.as_str()), (200, r#"{"delivered":0}"#));
    host.stop().await;
}

#[tokio::test]
async fn module_publish_reaches_a_websocket_subscriber() {
    let (_ws, host) = host().await;
    let mut c = Client::authorized(&host, "alice-token").await;
    c.subscribe(json!({"target": "message", "customer": "42"}), "m")
        .await;
    let (status, body) = host
        .call(
            "echo",
            "publish",
            json!({"rooms": [{"target": "message", "customer": "42"}], "data": {"from": "echo"}}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"result": {"delivered": 1}})));
    assert_eq!(
        c.next().await,
        json!({"type": "publish", "data": {"from": "echo"}, "requestId": "m"})
    );
    host.stop().await;
}

#[tokio::test]
async fn metrics_report_connections_rooms_and_modules() {
    let (_ws, host) = host().await;
    let mut c = Client::authorized(&host, "alice-token").await;
    c.subscribe(json!({"target": "message", "customer": "1"}), "m")
        .await;
    trigger(
        &host,
        json!([{"target": "message", "customer": "1"}]),
        json!(1),
    )
    .await;
    c.next().await;
    let text = http()
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "modhost_connections_open 1",
        "modhost_rooms 1",
        "modhost_subscriptions 1",
        "modhost_ws_messages_sent_total 1",
        "modhost_publishes_total 1",
        "modhost_modules{state=\"running\"} 4",
        "modhost_module_calls_in_flight{module=\"echo\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    host.stop().await;
}
