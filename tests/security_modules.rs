//! Module rights (issue 12, items 7 and 8): a module acts for the user whose
//! call it handles. Through a module a user reaches no command their roles
//! do not allow, publishes to no room they could not subscribe to, and
//! pushes to nobody but themselves; echo's `sleep` is for admins.
//!
//! None of this is about memory or time, so the host runs in this process.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Client, TestHost, Workspace};

async fn host() -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "[modules.echo]\ngreeting = \"secret\"").await;
    (ws, host)
}

/// `module.command(params)` called through relay.
fn relayed(module: &str, command: &str, params: Value) -> Value {
    json!({"module": module, "command": command, "params": params})
}

/// How long a client that should receive nothing listens.
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_user_reaches_no_admin_command_through_another_module() {
    let (_ws, host) = host().await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    let direct = alice.call("echo", "config", json!({}), "d").await;
    assert_eq!(direct["code"], "forbidden", "{direct}");
    // The same refusal through relay: the role check applies to alice.
    let through = alice
        .call("relay", "relay", relayed("echo", "config", json!({})), "r")
        .await;
    assert_eq!(through["code"], direct["code"], "{through}");
    assert!(through.get("result").is_none(), "{through}");

    // The callee sees alice, with relay as the calling module.
    let who = alice
        .call("relay", "relay", relayed("echo", "whoami", json!({})), "w")
        .await;
    let stamp = &who["result"]["result"];
    assert_eq!(stamp["kind"], "module", "{who}");
    assert_eq!(stamp["module"], "relay", "{who}");
    assert_eq!(stamp["user"], "alice", "{who}");
    assert_eq!(stamp["roles"], json!(["user"]), "{who}");

    // An admin, and the operator, still reach it through relay.
    let mut root = Client::authorized(&host, "admin-token").await;
    let admin = root
        .call("relay", "relay", relayed("echo", "config", json!({})), "a")
        .await;
    assert_eq!(admin["result"]["result"]["greeting"], "secret", "{admin}");
    let (status, body) = host
        .call("relay", "relay", relayed("echo", "config", json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["result"]["greeting"], "secret", "{body}");
    host.stop().await;
}

#[tokio::test]
async fn a_module_publishes_for_a_user_only_where_they_may_subscribe() {
    let (_ws, host) = host().await;
    // alice may read customer 1's messages; bob only customer 2's.
    let mut alice = Client::authorized(&host, "alice-token").await;
    let room_1 = json!({"target": "message", "customer": "1"});
    alice.subscribe(room_1.clone(), "one").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    let room_2 = json!({"target": "message", "customer": "2"});
    bob.subscribe(room_2.clone(), "two").await;

    let forged = json!({"forged": true});
    let attempts = [
        (
            "echo",
            "publish",
            json!({"rooms": [room_1], "data": forged}),
        ),
        (
            "echo",
            "publish",
            json!({"rooms": [{"target": "message", "customer": "*"}], "data": forged}),
        ),
        // One room outside among allowed ones: nothing at all goes out.
        (
            "echo",
            "publish",
            json!({"rooms": [room_2, room_1], "data": forged}),
        ),
        (
            "relay",
            "relay",
            relayed(
                "echo",
                "publish",
                json!({"rooms": [room_1], "data": forged}),
            ),
        ),
    ];
    for (i, (module, command, params)) in attempts.into_iter().enumerate() {
        let reply = bob.call(module, command, params, &format!("p{i}")).await;
        assert_eq!(reply["code"], "forbidden", "{reply}");
        assert!(
            reply["message"].as_str().unwrap().contains("bob"),
            "{reply}"
        );
    }
    assert_eq!(alice.silent_for(QUIET).await, None, "alice got a forgery");
    assert_eq!(bob.silent_for(QUIET).await, None, "bob got his own refusal");

    // Within bob's rights it still works.
    let ok = bob
        .call(
            "echo",
            "publish",
            json!({"rooms": [room_2], "data": "fine"}),
            "ok",
        )
        .await;
    // The room message and the reply, in either order.
    let mut frames = [ok, bob.next().await];
    frames.sort_by_key(|f| f["type"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        frames[0],
        json!({"type": "publish", "data": "fine", "requestId": "two"})
    );
    assert_eq!(frames[1]["result"], json!({"delivered": 1}), "{frames:?}");
    host.stop().await;
}

#[tokio::test]
async fn a_module_pushes_for_a_user_only_to_that_user_unless_an_admin_asks() {
    let (_ws, host) = host().await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    let mut bob = Client::authorized(&host, "bob-token").await;
    let refused = bob
        .call(
            "echo",
            "notify",
            json!({"user": "alice", "data": "phish"}),
            "n1",
        )
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let relayed_push = bob
        .call(
            "relay",
            "relay",
            relayed("echo", "notify", json!({"user": "alice", "data": "phish"})),
            "n2",
        )
        .await;
    assert_eq!(relayed_push["code"], "forbidden", "{relayed_push}");
    assert_eq!(alice.silent_for(QUIET).await, None, "alice was pushed to");

    // To oneself it works, and an admin may push to anyone.
    let own = bob
        .call("echo", "notify", json!({"user": "bob", "data": "me"}), "n3")
        .await;
    let push = json!({"type": "push", "module": "echo", "data": "me"});
    let mut frames = [own, bob.next().await];
    frames.sort_by_key(|f| f["type"].as_str().unwrap_or_default().to_owned());
    assert_eq!(frames[0], push, "{frames:?}");
    assert_eq!(frames[1]["result"], json!({"delivered": 1}), "{frames:?}");
    let mut root = Client::authorized(&host, "admin-token").await;
    let admin = root
        .call(
            "echo",
            "notify",
            json!({"user": "alice", "data": "notice"}),
            "n4",
        )
        .await;
    assert_eq!(admin["result"], json!({"delivered": 1}), "{admin}");
    assert_eq!(alice.next().await["data"], "notice");
    host.stop().await;
}

#[tokio::test]
async fn only_admins_may_make_echo_sleep() {
    let (_ws, host) = host().await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    let refused = alice
        .call("echo", "sleep", json!({"ms": 600_000}), "s")
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    // echo is not held up: the sleep never ran.
    let echoed = alice.call("echo", "echo", json!({"n": 1}), "e").await;
    assert_eq!(echoed["result"], json!({"n": 1}), "{echoed}");
    let mut root = Client::authorized(&host, "admin-token").await;
    let slept = root.call("echo", "sleep", json!({"ms": 10}), "s").await;
    assert_eq!(slept["result"], json!({"slept": 10}), "{slept}");
    host.stop().await;
}
