//! External modules as broker endpoints (issue 14 item 4): users and
//! modules call their commands, streams, publishes under the host's rules,
//! module-to-module both ways, disconnects, the grace period, and 2,000
//! pipelined calls without one lost (the rate, above 1,000 calls/s on this
//! machine even in a debug build, is printed, never asserted).

use std::time::Duration;

use serde_json::{Value, json};

use crate::external_client::{ModuleClient, divide, host, start_count};
use crate::harness::{Client, VERSION, Workspace};

#[tokio::test]
async fn a_users_call_reaches_an_external_command_with_the_stamped_caller() {
    let mut ws = Workspace::new();
    let host = host(&ws, "").await;
    let m = ModuleClient::serving(&host, &mut ws, "pymod").await;
    let server = tokio::spawn(m.serve(2));
    let mut alice = Client::authorized(&host, "alice-token").await;
    let r = divide(&mut alice, 7.0, 2.0, "c1").await;
    assert_eq!(
        (r["type"].clone(), r["result"]["quotient"].clone()),
        (json!("reply"), json!(3.5)),
        "{r}"
    );
    // A stream: every item, then the last with done.
    start_count(&mut alice, 3, "c2").await;
    let mut items = Vec::new();
    loop {
        let v = alice.next().await;
        items.push(v["result"].clone());
        if v["done"] == true {
            break;
        }
    }
    assert_eq!(items, vec![json!(1), json!(2), json!(3)]);
    // The broker checked it like any module's: params, unknown commands.
    let missing = alice
        .call("pymod", "divide", json!({"dividend": 1}), "c3")
        .await;
    assert_eq!(missing["code"], "missing-param", "{missing}");
    let unknown = alice.call("pymod", "nope", json!({}), "c4").await;
    assert_eq!(unknown["code"], "unknown-command", "{unknown}");
    // Kept connected: the listing below shows it running.
    let (_module, callers) = server.await.unwrap();
    assert_eq!(callers[0]["kind"], "user");
    assert_eq!(callers[0]["user"], "alice");
    assert_eq!(callers[0]["roles"], json!(["user"]));
    let rows = host.modules().await;
    let row = rows.iter().find(|r| r["name"] == "pymod").expect("listed");
    assert_eq!(
        (row["kind"].clone(), row["state"].clone()),
        (json!("external"), json!("running"))
    );
}

/// `relay` (in-process) calling `target.command(params)`.
fn relayed(module: &str, command: &str, params: Value) -> Value {
    json!({"module": module, "command": command, "params": params})
}

#[tokio::test]
async fn modules_call_each_other_both_ways() {
    let mut ws = Workspace::new();
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    ws.install("relay", "relay.so", "relay", VERSION, 1);
    let host = host(&ws, "").await;
    let mut m = ModuleClient::serving(&host, &mut ws, "pymod").await;
    // External → in-process.
    let r = m
        .request(&[
            ("type", json!("call_module")),
            ("module", json!("divide")),
            ("command", json!("divide")),
            ("params", json!({"dividend": 8, "divisor": 2})),
        ])
        .await;
    assert_eq!(
        (r["success"].clone(), r["result"]["quotient"].clone()),
        (json!(true), json!(4)),
        "{r}"
    );
    let refused = m
        .request(&[
            ("type", json!("call_module")),
            ("module", json!("ghost")),
            ("command", json!("x")),
        ])
        .await;
    assert_eq!(refused["reason"], "unknown-module");
    // In-process → external, for a user: relay calls pymod for alice.
    let server = tokio::spawn(m.serve(1));
    let mut alice = Client::authorized(&host, "alice-token").await;
    let r = alice
        .call(
            "relay",
            "relay",
            relayed("pymod", "divide", json!({"dividend": 1, "divisor": 4})),
            "r1",
        )
        .await;
    assert_eq!(r["result"]["result"]["quotient"], 0.25, "{r}");
    let (_, callers) = server.await.unwrap();
    assert_eq!(
        (
            callers[0]["kind"].clone(),
            callers[0]["module"].clone(),
            callers[0]["user"].clone()
        ),
        (json!("module"), json!("relay"), json!("alice"))
    );
}

#[tokio::test]
async fn publishes_follow_the_rules_of_in_process_modules() {
    let mut ws = Workspace::new();
    let host = host(&ws, "").await;
    let mut m = ModuleClient::serving(&host, &mut ws, "pymod").await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    assert_eq!(
        alice
            .subscribe(json!({"target": "message", "customer": "1"}), "s1")
            .await["code"],
        "success"
    );
    let r = m
        .publish(
            json!([{"target": "message", "customer": "1"}]),
            json!({"n": 1}),
            None,
        )
        .await;
    assert_eq!(
        (r["success"].clone(), r["delivered"].clone()),
        (json!(true), json!(1)),
        "{r}"
    );
    let got = alice.next().await;
    assert_eq!(
        (got["type"].clone(), got["data"].clone()),
        (json!("publish"), json!({"n": 1}))
    );
    // [limits] max_rooms_per_publish (64) applies.
    let rooms: Vec<Value> = (0..65)
        .map(|i| json!({"target": "message", "customer": i.to_string()}))
        .collect();
    let big = m.publish(json!(rooms), json!(1), None).await;
    assert_eq!(
        (big["success"].clone(), big["reason"].clone()),
        (json!(false), json!("too-large")),
        "{big}"
    );
    // Naming a call it is not handling is refused.
    let stray = m
        .publish(json!([{"target": "x"}]), json!(1), Some(json!(999)))
        .await;
    assert_eq!(stray["reason"], "forbidden", "{stray}");
}

#[tokio::test]
async fn a_publish_for_a_caller_is_held_to_that_callers_rooms() {
    let mut ws = Workspace::new();
    let host = host(&ws, "").await;
    let mut m = ModuleClient::serving(&host, &mut ws, "pymod").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    bob.send_json(json!({"type": "call", "module": "pymod", "command": "slow", "params": {}, "requestId": "b1"}))
        .await;
    let call = m.next().await;
    assert_eq!(call["type"], "call");
    // bob may only see customer 2: a publish for him elsewhere is refused.
    let r = m
        .publish(
            json!([{"target": "message", "customer": "1"}]),
            json!(1),
            Some(call["id"].clone()),
        )
        .await;
    assert_eq!(
        (r["success"].clone(), r["reason"].clone()),
        (json!(false), json!("forbidden")),
        "{r}"
    );
    let ok = m
        .publish(
            json!([{"target": "message", "customer": "2"}]),
            json!(1),
            Some(call["id"].clone()),
        )
        .await;
    assert_eq!(ok["success"], true, "{ok}");
}

#[tokio::test]
async fn a_disconnect_fails_calls_in_flight_and_the_grace_period_keeps_the_name() {
    let mut ws = Workspace::new();
    let host = host(&ws, "grace_secs = 2").await;
    let key = ws.key("pymod");
    let mut m = ModuleClient::serving(&host, &mut ws, "pymod").await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    alice
        .send_json(json!({"type": "call", "module": "pymod", "command": "slow", "params": {}, "requestId": "c1"}))
        .await;
    assert_eq!(m.next().await["type"], "call");
    drop(m);
    let r = alice.next().await;
    assert_eq!(r["code"], "module-unavailable", "{r}");
    // In the grace period: still known, unavailable.
    let r = divide(&mut alice, 1, 1, "c2").await;
    assert_eq!(r["code"], "module-unavailable", "{r}");
    let rows = host.modules().await;
    assert!(
        rows.iter()
            .any(|r| r["name"] == "pymod" && r["state"] == "disconnected"),
        "{rows:?}"
    );
    // A reconnect within it keeps the registered commands.
    let mut back = ModuleClient::connect(&host, "pymod", key.clone()).await;
    assert_eq!(back.start().await["status"], "recognized");
    let server = tokio::spawn(back.serve(1));
    let r = divide(&mut alice, 6, 3, "c3").await;
    assert_eq!(r["result"]["quotient"], 2.0, "{r}");
    drop(server.await.unwrap());
    // After the grace period the name is gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = divide(&mut alice, 1, 1, "c4").await;
    assert_eq!(r["code"], "unknown-module", "{r}");
}

#[tokio::test]
async fn two_thousand_pipelined_calls_lose_none_and_are_answered_once() {
    const CALLS: usize = 2000;
    let mut ws = Workspace::new();
    let host = host(&ws, "").await;
    let m = ModuleClient::serving(&host, &mut ws, "pymod").await;
    let server = tokio::spawn(m.serve(CALLS));
    let mut alice = Client::authorized(&host, "alice-token").await;
    let started = std::time::Instant::now();
    let mut answered = std::collections::HashMap::new();
    let mut sent = 0;
    // Up to 200 in flight ([limits] max_calls_in_flight is 256).
    while answered.len() < CALLS {
        while sent < CALLS && sent - answered.len() < 200 {
            alice
                .send_json(json!({"type": "call", "module": "pymod", "command": "divide",
                    "params": {"dividend": sent as f64, "divisor": 2.0}, "requestId": sent.to_string()}))
                .await;
            sent += 1;
        }
        let r = alice.next().await;
        assert_eq!(r["type"], "reply", "{r}");
        let id: usize = r["requestId"].as_str().unwrap().parse().unwrap();
        assert_eq!(r["result"]["quotient"], json!(id as f64 / 2.0));
        assert!(answered.insert(id, ()).is_none(), "answered twice: {id}");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{CALLS} calls through an external module in {secs:.2} s: {:.0} calls/s",
        CALLS as f64 / secs
    );
    let (_, callers) = server.await.unwrap();
    assert_eq!(callers.len(), CALLS, "the module got each call once");
}

#[tokio::test]
async fn unanswered_calls_are_bounded_per_module_and_time_out() {
    let mut ws = Workspace::new();
    let extra = "max_pending_calls = 2\n[modules.pymod]\ncall_timeout_ms = 1500";
    let host = host(&ws, extra).await;
    let mut m = ModuleClient::serving(&host, &mut ws, "pymod").await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    for rid in ["s1", "s2", "s3"] {
        alice
            .send_json(json!({"type": "call", "module": "pymod", "command": "slow", "params": {}, "requestId": rid}))
            .await;
    }
    // The third finds two unanswered and is refused at once.
    let third = alice.next().await;
    assert_eq!(
        (third["requestId"].clone(), third["code"].clone()),
        (json!("s3"), json!("module-unavailable")),
        "{third}"
    );
    assert!(
        third["message"]
            .as_str()
            .unwrap()
            .contains("max_pending_calls"),
        "{third}"
    );
    // The two the module holds time out ([modules.pymod] call_timeout_ms).
    for _ in 0..2 {
        let r = alice.next().await;
        assert_eq!(r["code"], "module-timeout", "{r}");
    }
    // A late reply is dropped; the module gets no error for it.
    let first = m.next().await;
    assert_eq!(first["type"], "call");
    let (late, _) = m.frame(&[
        ("type", json!("reply")),
        ("id", first["id"].clone()),
        ("result", json!(1)),
    ]);
    m.send_text(&late).await;
    let ok = m.request(&[("type", json!("get_running_modules"))]).await;
    assert_eq!(ok["success"], true, "{ok}");
}
