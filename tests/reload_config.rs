//! Hot reload of config.toml and keys against a running host: edits
//! applied live and bad ones kept out, a verify key added at runtime, a
//! restart loading the same builds again.
//!
//! No test asserts how long anything takes: each one waits (generously)
//! for the state it expects, polling the admin API.

use base64::Engine as _;
use modhost::signing;
use serde_json::{Value, json};

use crate::harness::{Client, TestHost, VERSION, Workspace, write_atomic};
use crate::reload::{echo_answers, eventually, stamp_generation, wait_refusal};

#[tokio::test]
async fn config_edits_apply_live_and_bad_ones_are_kept_out() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    ws.install("divide", "divide.so", "divide", VERSION, 1);
    let base = "[modules.echo]\ngreeting = \"hello\"";
    let text = ws.write_config(base);
    let host = TestHost::start_text(&ws, &text).await;
    let echo_config = || async { host.call("echo", "config", json!({})).await.1["result"].clone() };
    assert_eq!(echo_config().await, json!({"greeting": "hello"}));
    let status = host.config_status().await;
    assert_eq!(status["watching"], true, "{status}");

    // A bad edit: one error with file and line; the running config stays.
    ws.write_config(&format!("{base}\n[limits]\nsend_queue = \"lots\""));
    let status = eventually("reporting the bad edit", || async {
        let s = host.config_status().await;
        (!s["last_error"].is_null()).then_some(s)
    })
    .await;
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("config.toml:") && error.contains("send_queue"),
        "{error}"
    );
    assert!(status["last_error_line"].as_u64().is_some(), "{status}");
    assert_eq!(status["applied"], 0);
    assert_eq!(host.state.config.load().limits.send_queue, 1024);
    assert_eq!(echo_config().await, json!({"greeting": "hello"}));
    Client::authorized(&host, "alice-token").await;
    assert_eq!(
        host.ws("carol-token").await.next().await,
        json!({"is_authorized": false})
    );

    // A good edit: module config delivered, a new token, a module switched
    // off, a per-module timeout.
    let good = "[modules.echo]\ngreeting = \"bonjour\"\ncall_timeout_ms = 2500\n\
        [modules.divide]\nenabled = false\n\
        [[auth.tokens]]\ntoken = \"carol-token\"\nuser = \"carol\"\nroles = [\"user\"]\n\
        allowed_rooms = [{ target = \"message\", customer = \"3\" }]";
    ws.write_config(good);
    let status = eventually("applying the good edit", || async {
        let s = host.config_status().await;
        (s["applied"] == 1).then_some(s)
    })
    .await;
    assert_eq!(status["last_error"], Value::Null, "{status}");
    eventually("echo seeing its new config", || async {
        (echo_config().await == json!({"greeting": "bonjour"})).then_some(())
    })
    .await;
    Client::authorized(&host, "carol-token").await;
    Client::authorized(&host, "alice-token").await;
    host.wait_module("divide", "deregistered", Value::is_null)
        .await;
    let (_, body) = host
        .call("divide", "divide", json!({"dividend": 1, "divisor": 1}))
        .await;
    assert_eq!(body["error"]["code"], "unknown-module");
    let disabled = wait_refusal(&host, "divide.so", "disabled").await;
    assert!(disabled.contains("enabled = false"), "{disabled}");
    let echo = host.state.registry.get("echo").unwrap();
    assert_eq!(echo.call_timeout_ms(), 2500);
    assert_eq!(
        echo.generation, 1,
        "a config change is delivered, not a reload"
    );

    // Switched on again: its file is loaded.
    ws.write_config("[modules.echo]\ngreeting = \"bonjour\"");
    host.wait_module("divide", "loaded again", |m| m["state"] == "running")
        .await;
    let (status, _) = host
        .call("divide", "divide", json!({"dividend": 1, "divisor": 1}))
        .await;
    assert_eq!(status, 200);

    // A change that needs a restart: warned, and the host keeps its socket.
    let moved = ws
        .config_text("[modules.echo]\ngreeting = \"bonjour\"")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:9\"");
    write_atomic(&ws.path().join("config.toml"), moved.as_bytes());
    let status = eventually("warning about server.listen", || async {
        let s = host.config_status().await;
        (s["restart_pending"] == json!(["server.listen"])).then_some(s)
    })
    .await;
    assert_eq!(status["last_error"], Value::Null, "{status}");
    assert_eq!(host.state.config.load().server.listen.port(), 0);
    echo_answers(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn a_key_added_at_runtime_lets_a_refused_build_load() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let host = TestHost::start(&ws, "").await;

    // Signed with a key the host does not trust yet.
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let bytes = Workspace::build_bytes("stamp", 0);
    let sig = signing::sign(
        &bytes,
        &key,
        "stamp",
        VERSION,
        1,
        modhost_plugin_api::abi::ABI,
    );
    ws.publish_bytes("stamp.so", &bytes, &sig.to_toml());
    wait_refusal(&host, "stamp.so", "no verify key").await;

    let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
    write_atomic(
        &ws.path().join("verify").join("stamp.pub"),
        format!("{public}\n").as_bytes(),
    );
    host.wait_module("stamp", "loaded", |m| m["generation"] == 1)
        .await;
    assert_eq!(stamp_generation(&host).await, 1);
    assert!(host.refusals().await.is_empty());
    host.stop().await;
}

#[tokio::test]
async fn a_restart_loads_the_same_builds_again() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 3);
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;
    host.stop().await;

    // Same files, same state folder: the build at the rollback mark is the
    // accepted one, not a rollback.
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;
    assert!(host.refusals().await.is_empty());
    host.stop().await;
}
