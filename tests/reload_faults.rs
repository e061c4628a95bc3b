//! Hot reload against a running host, what goes wrong: refused builds
//! leave the running one serving; panics and hung handlers are contained
//! (timeouts, degraded, reset).
//!
//! No test asserts how long anything takes: each one waits (generously)
//! for the state it expects, polling the admin API.

use serde_json::{Value, json};

use crate::harness::{Client, TestHost, VERSION, Workspace};
use crate::reload::{echo_answers, eventually, stamp_generation, two_builds, wait_refusal};

#[tokio::test]
async fn refused_builds_leave_the_running_one_serving() {
    let mut ws = Workspace::new();
    let [a, b] = two_builds("echo");
    ws.publish("echo.so", &a, "echo", 5);
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;

    // Tampered after signing.
    let sig = ws.sign_bytes(&b, "echo", VERSION, 6);
    let mut tampered = b.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    ws.publish_bytes("echo.so", &tampered, &sig);
    wait_refusal(&host, "echo.so", "SHA-512").await;
    let row = host.module("echo").await.unwrap();
    assert_eq!(
        (&row["generation"], &row["state"]),
        (&json!(1), &json!("running"))
    );
    assert!(
        row["last_error"].as_str().unwrap().contains("SHA-512"),
        "{row}"
    );
    echo_answers(&host).await;

    // A lower seq, and another build under the running seq: rollbacks.
    ws.publish("echo.so", &b, "echo", 4);
    wait_refusal(
        &host,
        "echo.so",
        "seq 4 is not above the highest accepted seq 5",
    )
    .await;
    ws.publish("echo.so", &b, "echo", 5);
    wait_refusal(
        &host,
        "echo.so",
        "a different build was already accepted at seq 5",
    )
    .await;
    echo_answers(&host).await;

    // The running build seen again (same bytes, same seq): nothing happens,
    // and it is no rollback.
    ws.publish("echo.so", &a, "echo", 5);
    eventually("the refusal row cleared", || async {
        host.refusals().await.is_empty().then_some(())
    })
    .await;
    assert_eq!(host.module("echo").await.unwrap()["generation"], 1);

    // The same bytes re-signed with a higher seq: a new generation.
    ws.publish("echo.so", &a, "echo", 6);
    let row = host
        .wait_module("echo", "at generation 2", |m| m["generation"] == 2)
        .await;
    assert_eq!((&row["seq"], &row["last_error"]), (&json!(6), &Value::Null));
    // And the other build with the next seq.
    ws.publish("echo.so", &b, "echo", 7);
    host.wait_module("echo", "at generation 3", |m| m["generation"] == 3)
        .await;
    echo_answers(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn panics_in_a_handler_or_in_start_leave_the_module_serving() {
    let mut ws = Workspace::new();
    let [a, b] = two_builds("stamp");
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    ws.publish("stamp.so", &a, "stamp", 1);
    let marker = ws.path().join("stamp-must-panic");
    let host = TestHost::start(
        &ws,
        &format!(
            "[modules.stamp]\npanic_if_exists = {:?}",
            marker.display().to_string()
        ),
    )
    .await;

    // In a handler: that call fails, the instance is rebuilt, the next works.
    let (status, body) = host.call("divide", "boom", json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (500, &json!("module-panicked"))
    );
    let (status, body) = host
        .call("divide", "divide", json!({"dividend": 9, "divisor": 3}))
        .await;
    assert_eq!((status, body), (200, json!({"result": {"quotient": 3}})));
    assert_eq!(host.module("divide").await.unwrap()["restarts"], 1);

    // In start, for a new build: refused; the running build keeps serving.
    std::fs::write(&marker, "").unwrap();
    ws.publish("stamp.so", &b, "stamp", 2);
    let reason = wait_refusal(&host, "stamp.so", "panicked").await;
    assert!(reason.contains("on_load"), "{reason}");
    let row = host.module("stamp").await.unwrap();
    assert_eq!(
        (&row["generation"], &row["state"]),
        (&json!(1), &json!("running"))
    );
    assert!(
        row["last_error"].as_str().unwrap().contains("panicked"),
        "{row}"
    );
    assert_eq!(stamp_generation(&host).await, 1);

    // Fixed: the next build starts.
    std::fs::remove_file(&marker).unwrap();
    ws.publish("stamp.so", &b, "stamp", 3);
    host.wait_module("stamp", "at generation 2", |m| m["generation"] == 2)
        .await;
    assert_eq!(stamp_generation(&host).await, 2);
    assert!(host.refusals().await.is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_hung_handler_times_out_then_degrades_until_reset() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    // A timeout a busy machine never reaches for an echo; the hung
    // handler sleeps far past it.
    let host = TestHost::start(&ws, "[modules.echo]\ncall_timeout_ms = 3000").await;
    // An admin: echo's sleep is admin-only.
    let mut client = Client::authorized(&host, "admin-token").await;

    // A handler that does not return: it and the calls queued behind it
    // time out.
    for i in 1..=modhost::modules::DEGRADE_AFTER_TIMEOUTS {
        client
            .send_json(json!({"type": "call", "module": "echo", "command": "sleep",
                "params": {"ms": 20_000}, "requestId": format!("h{i}")}))
            .await;
    }
    for _ in 1..=modhost::modules::DEGRADE_AFTER_TIMEOUTS {
        let reply = client.next().await;
        assert_eq!(reply["code"], "module-timeout", "{reply}");
    }
    let row = host
        .wait_module("echo", "degraded", |m| m["state"] == "degraded")
        .await;
    assert!(
        row["last_error"].as_str().unwrap().contains("degraded"),
        "{row}"
    );

    // Degraded: calls fail at once instead of queueing behind the stuck
    // thread; other modules are unaffected.
    let (status, body) = host.call("echo", "echo", json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("module-unavailable"))
    );
    let reply = client.call("echo", "echo", json!({}), "after").await;
    assert_eq!(reply["code"], "module-unavailable", "{reply}");
    let (status, _) = host
        .call("divide", "divide", json!({"dividend": 1, "divisor": 1}))
        .await;
    assert_eq!(status, 200);

    // An operator reset starts a fresh instance from the same build, while
    // the old thread is still asleep.
    let (status, body) = host.reset("echo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["generation"], &body["state"]),
        (&json!(2), &json!("running"))
    );
    echo_answers(&host).await;
    let reply = client
        .call("echo", "echo", json!({"ok": true}), "fresh")
        .await;
    assert_eq!(reply["result"], json!({"ok": true}), "{reply}");
    let row = host.module("echo").await.unwrap();
    assert_eq!((&row["state"], &row["seq"]), (&json!("running"), &json!(1)));
    assert_eq!(row["last_error"], Value::Null);
    assert_eq!(row["generations"], 1, "a reset maps no new library: {row}");
    // The stuck thread misses its drain deadline and is counted.
    host.wait_module("echo", "counting a stuck thread", |m| {
        m["stuck_threads"] == 1
    })
    .await;
    echo_answers(&host).await;

    let (status, body) = host.reset("ghost").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown-module"))
    );
    host.stop().await;
}
