//! The command broker over websockets: replies, errors, streams, order,
//! exactly-once, bounds, resource offers, module-to-module calls.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Client, TestHost, VERSION, Workspace};

async fn host(extra: &str) -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, extra).await;
    (ws, host)
}

#[tokio::test]
async fn replies_and_every_error_code() {
    // A timeout a busy machine never reaches for an echo; the sleep is far
    // past it.
    let (_ws, host) = host("[modules.echo]\ncall_timeout_ms = 3000").await;
    // An admin: the sleep that times out is admin-only.
    let mut c = Client::authorized(&host, "admin-token").await;
    assert_eq!(
        c.call("echo", "echo", json!({"a": [1, 2]}), "1").await,
        json!({"type": "reply", "requestId": "1", "result": {"a": [1, 2]}})
    );
    let cases = [
        (
            json!({"type":"call","module":"nope","command":"x","params":{},"requestId":"2"}),
            "unknown-module",
        ),
        (
            json!({"type":"call","module":"echo","command":"nope","params":{},"requestId":"3"}),
            "unknown-command",
        ),
        (
            json!({"type":"call","module":"divide","command":"divide","params":{"dividend":1},"requestId":"4"}),
            "missing-param",
        ),
        (
            json!({"type":"call","module":"divide","command":"divide","params":[1],"requestId":"5"}),
            "missing-param",
        ),
        (
            json!({"type":"call","module":"divide","command":"divide","params":{"dividend":1,"divisor":0},"requestId":"6"}),
            "module-error",
        ),
        (
            json!({"type":"call","module":"divide","command":"boom","params":{},"requestId":"7"}),
            "module-panicked",
        ),
        (
            json!({"type":"call","module":"echo","command":"sleep","params":{"ms":30000},"requestId":"8"}),
            "module-timeout",
        ),
    ];
    for (frame, code) in cases {
        let rid = frame["requestId"].clone();
        c.send_json(frame).await;
        let reply = c.next().await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["requestId"], rid);
        assert_eq!(reply["code"], code, "{reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c.send_json(json!({"type":"call","module":"echo","command":"echo"}))
        .await;
    assert_eq!(
        c.next().await,
        json!({"code": "error", "message": "no-request-id"})
    );
    host.stop().await;
}

#[tokio::test]
async fn forbidden_too_large_and_rate_limited() {
    let (_ws, host) = host("[limits]\nmax_params_bytes = 1024\ncalls_per_second = 50").await;
    let mut c = Client::authorized(&host, "alice-token").await;
    // `config` is an admin-only command of echo.
    let reply = c.call("echo", "config", json!({}), "f").await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    let reply = c
        .call("echo", "echo", json!({"pad": "x".repeat(2000)}), "big")
        .await;
    assert_eq!(reply["code"], "too-large", "{reply}");
    let mut limited = 0;
    let started = std::time::Instant::now();
    for i in 0..120 {
        c.send_json(json!({"type":"call","module":"echo","command":"echo","params":{},"requestId":format!("r{i}")})).await;
    }
    for _ in 0..120 {
        if c.next().await["code"] == "rate-limited" {
            limited += 1;
        }
    }
    // The limit counts in one-second windows (the first opened when the
    // session did): however slow the machine, no window let more than 50
    // through, so a burst of 120 within a few seconds is limited.
    let windows = started.elapsed().as_secs() + 2;
    assert!(
        120 - limited <= 50 * windows,
        "{} of 120 served in {windows} windows",
        120 - limited
    );
    assert!(limited > 0 || windows > 3, "none of 120 rate-limited");
    host.stop().await;
}

#[tokio::test]
async fn identity_is_stamped_and_cannot_be_forged() {
    let (_ws, host) = host("").await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let reply = c
        .call(
            "echo",
            "whoami",
            json!({"user": "mallory", "session": "x", "roles": ["admin"]}),
            "w",
        )
        .await;
    let me = &reply["result"];
    assert_eq!(me["user"], "alice", "{reply}");
    assert_eq!(me["kind"], "user");
    assert_eq!(me["roles"], json!(["user"]));
    assert_ne!(me["session"], "x");
    host.stop().await;
}

#[tokio::test]
async fn streams_arrive_in_order_and_end_with_done() {
    let (_ws, host) = host("").await;
    let mut c = Client::authorized(&host, "alice-token").await;
    c.send_json(
        json!({"type":"call","module":"echo","command":"count","params":{"n": 50},"requestId":"s"}),
    )
    .await;
    for i in 1..=50 {
        let reply = c.next().await;
        assert_eq!(reply["requestId"], "s");
        assert_eq!(reply["result"]["i"], i, "{reply}");
        assert_eq!(reply["done"], i == 50, "{reply}");
    }
    host.stop().await;
}

#[tokio::test]
async fn ten_thousand_calls_from_one_session_arrive_in_order() {
    let (_ws, host) = host("").await;
    let c = Client::authorized(&host, "alice-token").await;
    let (mut tx, mut rx) = c.ws.split();
    // Keep fewer calls in flight than the per-connection limit (256) by
    // waiting for replies, not for time.
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let permits = window.clone();
    let sender = tokio::spawn(async move {
        for i in 0..10_000u32 {
            permits.acquire().await.unwrap().forget();
            let frame = json!({"type":"call","module":"echo","command":"echo","params":{"i": i},"requestId": i.to_string()});
            tx.feed(Message::text(frame.to_string())).await.unwrap();
            if i % 64 == 63 {
                tx.flush().await.unwrap();
            }
        }
        tx.flush().await.unwrap();
        tx
    });
    let mut next = 0u32;
    while next < 10_000 {
        let msg = tokio::time::timeout(Duration::from_secs(30), rx.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["type"] == "resource_offer" {
            continue;
        }
        assert_eq!(v["type"], "reply", "{v}");
        assert_eq!(v["result"]["i"], next, "{v}");
        assert_eq!(v["requestId"], next.to_string());
        window.add_permits(1);
        next += 1;
    }
    drop(sender.await.unwrap());
    host.stop().await;
}

#[tokio::test]
async fn a_repeated_request_id_runs_once() {
    let (_ws, host) = host("").await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let first = c
        .call("notes", "write_note", json!({"note": "hello"}), "n1")
        .await;
    assert_eq!(first["result"]["count"], 1, "{first}");
    let again = c
        .call("notes", "write_note", json!({"note": "hello"}), "n1")
        .await;
    assert_eq!(again, first, "the repeat gets the stored reply");
    // Only the requestId is looked at: other params, another command or
    // module under it still get the first answer and run nothing.
    for (module, command, params) in [
        ("notes", "write_note", json!({"note": "other"})),
        ("notes", "fetch_notes", json!({})),
        ("echo", "echo", json!({"x": 1})),
    ] {
        let reused = c.call(module, command, params, "n1").await;
        assert_eq!(reused, first, "{module}.{command} under a reused requestId");
    }
    let notes = c.call("notes", "fetch_notes", json!({}), "f").await;
    assert_eq!(notes["result"]["notes"], json!(["hello"]));
    // Another user's notes are separate.
    let mut bob = Client::authorized(&host, "bob-token").await;
    let theirs = bob.call("notes", "fetch_notes", json!({}), "f").await;
    assert_eq!(theirs["result"]["notes"], json!([]));
    // A fire-and-forget command is acknowledged.
    let ack = c.call("echo", "fire", json!({}), "ff").await;
    assert_eq!(ack, json!({"type": "ack", "requestId": "ff"}));
    host.stop().await;
}

#[tokio::test]
async fn a_full_module_queue_answers_module_unavailable() {
    let (_ws, host) = host("[limits]\nmodule_queue = 4").await;
    // An admin: echo's sleep is admin-only.
    let mut c = Client::authorized(&host, "admin-token").await;
    for i in 0..12 {
        c.send_json(json!({"type":"call","module":"echo","command":"sleep","params":{"ms": 1000},"requestId": format!("q{i}")}))
            .await;
    }
    let mut unavailable = 0;
    let mut slept = 0;
    for _ in 0..12 {
        let r = c.next().await;
        if r["code"] == "module-unavailable" {
            unavailable += 1;
        } else if r["result"]["slept"] == 1000 {
            slept += 1;
        }
    }
    assert_eq!(slept, 4, "the queue holds 4");
    assert_eq!(unavailable, 8);
    host.stop().await;
}

#[tokio::test]
async fn resource_offer_is_filtered_and_updated() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    // Trusted from the start; its build arrives later.
    ws.key("notes");
    let host = TestHost::start(&ws, "").await;
    let offer = |admin: bool, offer: &Value| {
        let echo = offer["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "echo")
            .cloned()
            .unwrap();
        let names: Vec<String> = echo["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names.contains(&"config".to_owned()), admin, "{names:?}");
    };
    let mut user = host.ws("alice-token").await;
    user.next_text().await;
    let first: Value = serde_json::from_str(&user.next_text().await).unwrap();
    offer(false, &first);
    let mut admin = host.ws("admin-token").await;
    admin.next_text().await;
    offer(
        true,
        &serde_json::from_str(&admin.next_text().await).unwrap(),
    );

    // A module appears: the offer is sent again.
    ws.install("notes", "notes.so", "notes", VERSION, 1);
    host.state
        .registry
        .load_file(&ws.plugins().join("notes.so"))
        .unwrap();
    let again: Value = serde_json::from_str(&user.next_text().await).unwrap();
    assert_eq!(again["type"], "resource_offer");
    assert!(
        again["modules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "notes"),
        "{again}"
    );
    host.stop().await;
}

#[tokio::test]
async fn module_to_module_calls_and_their_errors() {
    let (_ws, host) = host("").await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let ok = c
        .call(
            "relay",
            "relay",
            json!({"module": "echo", "command": "whoami", "params": {}}),
            "1",
        )
        .await;
    assert_eq!(ok["result"]["result"]["kind"], "module", "{ok}");
    assert_eq!(ok["result"]["result"]["module"], "relay", "{ok}");
    let missing = c
        .call(
            "relay",
            "relay",
            json!({"module": "ghost", "command": "x", "params": {}}),
            "2",
        )
        .await;
    assert_eq!(missing["code"], "unknown-module", "{missing}");
    let failing = c
        .call("relay", "relay", json!({"module": "divide", "command": "divide", "params": {"dividend": 1, "divisor": 0}}), "3")
        .await;
    assert_eq!(failing["code"], "module-error", "{failing}");
    assert!(
        failing["message"]
            .as_str()
            .unwrap()
            .contains("division by zero")
    );
    host.stop().await;
}

/// The resume token and session name from a first frame.
fn resume_of(hello: &Value) -> (String, String) {
    (
        hello["resume"].as_str().expect("a resume token").to_owned(),
        hello["session"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn resume_returns_missed_replies_and_publishes() {
    let (_ws, host) = host("").await;
    // An admin: echo's sleep is admin-only.
    let (mut c, hello) = Client::hello(&host, "admin-token", "").await;
    let (token, session) = resume_of(&hello);
    c.subscribe(json!({"target": "message", "customer": "1"}), "sub")
        .await;
    c.send_json(json!({"type":"call","module":"echo","command":"sleep","params":{"ms": 300},"requestId":"slow"}))
        .await;
    // The connection breaks (no close frame).
    drop(c);
    crate::harness::eventually("parked", || host.state.sessions.parked() == 1).await;
    let rows = crate::harness::api_connections(&host.url("")).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["session"].as_str(), rows[0]["state"].as_str()),
        (Some(session.as_str()), Some("parked"))
    );
    let (status, _) = host
        .trigger(
            Some(crate::harness::TRIGGER_TOKEN),
            &json!({"rooms": [{"target": "message", "customer": "1"}], "data": "missed"})
                .to_string(),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (mut back, hello) = Client::hello(&host, "admin-token", &format!("&resume={token}")).await;
    assert_eq!(hello["session"], session.as_str(), "same session");
    assert_ne!(
        hello["resume"],
        token.as_str(),
        "a fresh token for the next resume"
    );
    assert_eq!(
        back.next().await,
        json!({"type": "resumed", "complete": true})
    );
    let mut missed = [back.next().await, back.next().await];
    missed.sort_by_key(|v| v["type"].as_str().unwrap().to_owned());
    assert_eq!(
        missed[0],
        json!({"type": "publish", "data": "missed", "requestId": "sub"})
    );
    assert_eq!(
        missed[1],
        json!({"type": "reply", "requestId": "slow", "result": {"slept": 300}})
    );
    // The subscription is live again, and the call log survived: a repeat
    // of the finished call is answered from it, not run again.
    let again = back.call("echo", "sleep", json!({"ms": 300}), "slow").await;
    assert_eq!(again, missed[1]);
    host.trigger(
        Some(crate::harness::TRIGGER_TOKEN),
        &json!({"rooms": [{"target": "message", "customer": "1"}], "data": "live"}).to_string(),
    )
    .await;
    assert_eq!(back.next().await["data"], "live");
    host.stop().await;
}

#[tokio::test]
async fn resume_tells_the_client_when_messages_were_lost() {
    let (_ws, host) = host("[limits]\nresume_buffer = 3").await;
    let (mut c, hello) = Client::hello(&host, "alice-token", "").await;
    let (token, _) = resume_of(&hello);
    c.subscribe(json!({"target": "message", "customer": "1"}), "sub")
        .await;
    drop(c);
    crate::harness::eventually("parked", || host.state.sessions.parked() == 1).await;
    for i in 0..10 {
        host.trigger(
            Some(crate::harness::TRIGGER_TOKEN),
            &json!({"rooms": [{"target": "message", "customer": "1"}], "data": i}).to_string(),
        )
        .await;
    }
    let (mut back, _) = Client::hello(&host, "alice-token", &format!("&resume={token}")).await;
    assert_eq!(
        back.next().await,
        json!({"type": "resumed", "complete": false})
    );
    for i in 0..3 {
        assert_eq!(
            back.next().await["data"],
            i,
            "what fit in the buffer, in order"
        );
    }
    assert_eq!(back.silent_for(Duration::from_millis(300)).await, None);
    host.stop().await;
}

#[tokio::test]
async fn after_the_grace_period_or_for_another_user_it_is_a_fresh_session() {
    let (_ws, host) = host("").await;
    let (c, hello) = Client::hello(&host, "alice-token", "").await;
    let (token, session) = resume_of(&hello);
    drop(c);
    crate::harness::eventually("parked", || host.state.sessions.parked() == 1).await;
    // Another user cannot take alice's session.
    let (mut bob, hello) = Client::hello(&host, "bob-token", &format!("&resume={token}")).await;
    assert_ne!(hello["session"], session.as_str());
    assert_eq!(
        bob.next().await,
        json!({"type": "resume_failed", "reason": "unknown-or-expired"})
    );
    host.stop().await;

    let (_ws, host) = host_with_grace(1).await;
    let (mut c, hello) = Client::hello(&host, "alice-token", "").await;
    let (token, session) = resume_of(&hello);
    c.subscribe(json!({"target": "message", "customer": "1"}), "sub")
        .await;
    drop(c);
    // Rooms of a parked session stay until the grace period ends.
    crate::harness::eventually("expired after the grace period", || {
        host.state.fanout.num_rooms() == 0
    })
    .await;
    let (mut late, hello) = Client::hello(&host, "alice-token", &format!("&resume={token}")).await;
    assert_ne!(hello["session"], session.as_str());
    assert_eq!(
        late.next().await,
        json!({"type": "resume_failed", "reason": "unknown-or-expired"})
    );
    host.stop().await;
}

async fn host_with_grace(secs: u64) -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let text = ws.config_text("").replace(
        "idle_timeout_secs = 300",
        &format!("idle_timeout_secs = 300\nresume_grace_secs = {secs}"),
    );
    let host = TestHost::start_text(&ws, &text).await;
    (ws, host)
}

#[tokio::test]
async fn parked_sessions_are_capped_like_connections() {
    let (_ws, host) = host("[limits]\nmax_connections = 2").await;
    for _ in 0..5 {
        let (c, _) = Client::hello(&host, "alice-token", "").await;
        drop(c);
        // The slot comes back once the server has seen the drop.
        crate::harness::eventually("the slot given back", || host.state.sessions.open() == 0).await;
    }
    assert_eq!(
        host.state.sessions.parked(),
        2,
        "no more parked than max_connections"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_module_pushes_to_every_session_of_a_user() {
    let (_ws, host) = host("").await;
    let mut phone = Client::authorized(&host, "alice-token").await;
    let mut laptop = Client::authorized(&host, "alice-token").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    // An admin: a user's call may push only to that user
    // (tests/security_modules.rs).
    let mut root = Client::authorized(&host, "admin-token").await;
    let reply = root
        .call(
            "echo",
            "notify",
            json!({"user": "alice", "data": {"hi": "alice"}}),
            "n",
        )
        .await;
    assert_eq!(reply["result"], json!({"delivered": 2}), "{reply}");
    for c in [&mut phone, &mut laptop] {
        assert_eq!(
            c.next().await,
            json!({"type": "push", "module": "echo", "data": {"hi": "alice"}})
        );
    }
    assert_eq!(bob.silent_for(Duration::from_millis(300)).await, None);
    let nobody = root
        .call("echo", "notify", json!({"user": "carol", "data": 1}), "m")
        .await;
    assert_eq!(nobody["result"], json!({"delivered": 0}));
    host.stop().await;
}
