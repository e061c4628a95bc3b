//! Room history (issue 18): a `modhost.v1` client that comes back with
//! `since` gets exactly what it missed, in order, then live messages; or
//! is told `complete:false` and gets nothing partial. Wildcards recover
//! across rooms in publish order; high-templar's clients see no change;
//! operators read a room's history at `GET /api/rooms/history`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Client, TRIGGER_TOKEN, TestHost, Workspace, http};

/// History for every `message` room: `size` publications each.
pub fn history(size: usize) -> String {
    format!(
        "[[history.rooms]]\nroom = {{ target = \"message\", customer = \"*\" }}\nsize = {size}\nage_secs = 600\n"
    )
}

pub fn customer(c: &str) -> Value {
    json!({"target": "message", "customer": c})
}

/// Publishes `{"n": n}` to `rooms` through `POST /trigger/`.
pub async fn publish(host: &TestHost, rooms: Value, n: u64) {
    let body = json!({"rooms": rooms, "data": {"n": n}}).to_string();
    let (status, text) = host.trigger(Some(TRIGGER_TOKEN), &body).await;
    assert_eq!(status, 200, "{text}");
}

/// Subscribes (with `since` when given); returns the reply.
pub async fn subscribe(c: &mut Client, room: Value, rid: &str, since: Option<Value>) -> Value {
    let mut frame = json!({"type": "subscribe", "room": room, "requestId": rid});
    if let Some(since) = since {
        frame["since"] = since;
    }
    c.send_json(frame).await;
    let reply = c.next().await;
    assert_eq!(reply["code"], "success", "{reply}");
    reply
}

/// Room messages up to the `recovered` frame: (`n`, `offset`) each, and
/// whether the recovery was complete.
pub async fn recovered(c: &mut Client) -> (Vec<(u64, u64)>, bool) {
    let mut got = Vec::new();
    loop {
        let v = c.next().await;
        if v["type"] == "recovered" {
            return (got, v["complete"].as_bool().unwrap());
        }
        assert_eq!(v["type"], "publish", "{v}");
        got.push((
            v["data"]["n"].as_u64().unwrap(),
            v["offset"].as_u64().unwrap(),
        ));
    }
}

/// The next room message: (`n`, `offset`).
pub async fn live(c: &mut Client) -> (u64, u64) {
    let v = c.next().await;
    assert_eq!(v["type"], "publish", "{v}");
    (
        v["data"]["n"].as_u64().unwrap(),
        v["offset"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_back_after_100_missed_gets_all_100_in_order_then_live_ones() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, &history(1000)).await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let reply = subscribe(&mut c, customer("1"), "s", None).await;
    assert_eq!(reply["offset"], 0, "{reply}");
    let epoch = reply["epoch"].as_str().expect("an epoch").to_owned();
    publish(&host, json!([customer("1")]), 0).await;
    assert_eq!(live(&mut c).await, (0, 1));
    c.close().await;

    for n in 1..=100 {
        publish(&host, json!([customer("1")]), n).await;
    }
    let mut c = Client::authorized(&host, "alice-token").await;
    let since = json!({"offset": 1, "epoch": epoch});
    let reply = subscribe(&mut c, customer("1"), "s", Some(since)).await;
    assert_eq!(
        (reply["offset"].as_u64(), reply["epoch"].as_str()),
        (Some(101), Some(&*epoch))
    );
    let (got, complete) = recovered(&mut c).await;
    assert!(complete);
    let want: Vec<(u64, u64)> = (1..=100).map(|n| (n, n + 1)).collect();
    assert_eq!(got, want);
    publish(&host, json!([customer("1")]), 101).await;
    assert_eq!(live(&mut c).await, (101, 102));
    assert!(c.silent_for(Duration::from_millis(300)).await.is_none());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gap_beyond_the_history_is_incomplete_and_nothing_partial_is_sent() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, &history(10)).await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let epoch = subscribe(&mut c, customer("1"), "s", None).await["epoch"].clone();
    for n in 1..=20 {
        publish(&host, json!([customer("1")]), n).await;
    }
    let mut back = Client::authorized(&host, "alice-token").await;
    let since = json!({"offset": 5, "epoch": epoch});
    subscribe(&mut back, customer("1"), "s", Some(since)).await;
    let (got, complete) = recovered(&mut back).await;
    assert!(!complete);
    assert!(got.is_empty(), "{got:?}");
    // Within the history it recovers (11..=20 are kept).
    let since = json!({"offset": 10, "epoch": epoch});
    subscribe(&mut back, customer("1"), "t", Some(since)).await;
    let (got, complete) = recovered(&mut back).await;
    assert!(complete);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (11..=20).collect::<Vec<_>>()
    );
    // Another epoch, or a room without history: incomplete.
    subscribe(
        &mut back,
        customer("1"),
        "u",
        Some(json!({"offset": 10, "epoch": "x"})),
    )
    .await;
    assert_eq!(recovered(&mut back).await, (vec![], false));
    let notes = json!({"target": "notes", "user": "alice"});
    let reply = subscribe(
        &mut back,
        notes,
        "v",
        Some(json!({"offset": 0, "epoch": "x"})),
    )
    .await;
    assert_eq!(reply.get("offset"), None, "{reply}");
    assert_eq!(recovered(&mut back).await, (vec![], false));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_subscription_recovers_every_room_in_publish_order() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, &history(100)).await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let reply = subscribe(&mut c, customer("*"), "all", None).await;
    let since = json!({"offset": reply["offset"], "epoch": reply["epoch"]});
    c.close().await;
    // Rooms interleaved, one publish to two rooms, and one to all of them.
    publish(&host, json!([customer("1")]), 1).await;
    publish(&host, json!([customer("2")]), 2).await;
    publish(&host, json!([customer("1"), customer("2")]), 3).await;
    publish(&host, json!([customer("*")]), 4).await;
    publish(&host, json!([customer("3")]), 5).await;
    let mut c = Client::authorized(&host, "alice-token").await;
    subscribe(&mut c, customer("*"), "all", Some(since)).await;
    let (got, complete) = recovered(&mut c).await;
    assert!(complete);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // The host-wide sequence numbers them; live ones go on from there.
    let offsets: Vec<u64> = got.iter().map(|g| g.1).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    publish(&host, json!([customer("2")]), 6).await;
    let (n, offset) = live(&mut c).await;
    assert_eq!(n, 6);
    assert!(offset > *offsets.last().unwrap());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_during_reconnects_arrive_exactly_once() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, &history(10_000)).await;
    let total = 400;
    let mut c = Client::authorized(&host, "alice-token").await;
    let reply = subscribe(&mut c, customer("1"), "s", None).await;
    let epoch = reply["epoch"].clone();
    let publisher = {
        let url = host.url("/trigger/");
        tokio::spawn(async move {
            for n in 1..=total {
                let body = json!({"rooms": [customer("1")], "data": {"n": n}}).to_string();
                let resp = http()
                    .post(&url)
                    .bearer_auth(TRIGGER_TOKEN)
                    .body(body)
                    .send()
                    .await;
                assert_eq!(resp.unwrap().status(), 200);
            }
        })
    };
    let (mut got, mut last) = (Vec::new(), 0);
    while !publisher.is_finished() {
        // Read a little, then drop the connection and come back.
        while let Some(text) = c.next_text_within(Duration::from_millis(5)).await {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == "publish" {
                got.push(v["data"]["n"].as_u64().unwrap());
                last = v["offset"].as_u64().unwrap();
            }
        }
        drop(c);
        c = Client::authorized(&host, "alice-token").await;
        let since = json!({"offset": last, "epoch": epoch});
        subscribe(&mut c, customer("1"), "s", Some(since)).await;
        let (missed, complete) = recovered(&mut c).await;
        assert!(complete);
        got.extend(missed.iter().map(|m| m.0));
        last = missed.last().map_or(last, |m| m.1);
    }
    publisher.await.unwrap();
    while got.len() < total as usize {
        got.push(live(&mut c).await.0);
    }
    assert_eq!(got, (1..=total).collect::<Vec<_>>());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn high_templar_clients_see_no_offsets_no_epochs_and_no_recovery() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, &history(100)).await;
    let url = format!("ws://{}/ws/?token=alice-token", host.addr);
    let mut c = Client::connect_legacy(&url).await;
    let hello = c.next().await;
    assert_eq!(hello["is_authorized"], true, "{hello}");
    publish(&host, json!([customer("1")]), 1).await;
    c.send_json(
        json!({"type": "subscribe", "room": customer("1"), "requestId": "s",
        "since": {"offset": 0, "epoch": "whatever"}}),
    )
    .await;
    assert_eq!(c.next().await, json!({"code": "success"}));
    publish(&host, json!([customer("1")]), 2).await;
    assert_eq!(
        c.next_text().await,
        r#"{"type":"publish","data":{"n":2},"requestId":"s"}"#
    );
    assert!(c.silent_for(Duration::from_millis(300)).await.is_none());
    host.stop().await;
}

async fn history_api(host: &TestHost, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = http().get(host.url(&format!("/api/rooms/history{query}")));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_read_a_rooms_history_bounded_and_admin_only() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, &history(100)).await;
    for n in 1..=5 {
        publish(&host, json!([customer("1")]), n).await;
    }
    let room = "?room=%7B%22target%22%3A%22message%22%2C%22customer%22%3A%221%22%7D";
    let (status, body) = history_api(&host, &format!("{room}&limit=2"), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room"], customer("1"));
    assert_eq!(body["offset"], 5);
    assert!(body["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    let pubs = body["publications"].as_array().unwrap();
    assert_eq!(pubs.len(), 2);
    assert_eq!(
        (&pubs[0]["offset"], &pubs[0]["data"]),
        (&json!(4), &json!({"n": 4}))
    );
    assert_eq!(
        (&pubs[1]["offset"], &pubs[1]["data"]),
        (&json!(5), &json!({"n": 5}))
    );
    let kept = body["history_bytes"].as_u64().unwrap();
    assert!(kept > 0);
    let metrics = http()
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("modhost_history_bytes {kept}");
    assert!(
        metrics.lines().any(|l| l == line),
        "no `{line}` in:\n{metrics}"
    );

    assert_eq!(history_api(&host, room, None).await.0, 401);
    assert_eq!(history_api(&host, room, Some("alice-token")).await.0, 401);
    for bad in [
        "",
        "?room=nope",
        "?room=%7B%22target%22%3A%22*%22%7D",
        &format!("{room}&limit=1001"),
    ] {
        let (status, body) = history_api(&host, bad, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let other = "?room=%7B%22target%22%3A%22message%22%2C%22customer%22%3A%229%22%7D";
    assert_eq!(history_api(&host, other, Some(ADMIN_TOKEN)).await.0, 404);
    host.stop().await;
}
