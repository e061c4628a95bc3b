//! Calls of commands a module declares non-blocking, through the real
//! host (issue 13 item 3): the bundled modules run them on the caller's
//! thread and say so in `GET /api/modules`, and a module built before the
//! inline entry point's symbol still loads and answers, on its
//! instance thread.

use serde_json::json;

use crate::harness::{Client, TestHost, VERSION, Workspace};

#[tokio::test]
async fn a_module_built_without_the_inline_entry_point_still_loads_and_answers() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    ws.install("pre_inline", "pre-inline.so", "pre-inline", VERSION, 1);
    let host = TestHost::start(&ws, "").await;

    let (status, body) = host.call("pre-inline", "echo", json!({"x": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"],
        // The kernel keeps 15 bytes of a thread's name (`mod-pre-inline-g1`).
        json!({"params": {"x": 1}, "thread": "mod-pre-inline-"}),
        "its declaration never reaches the host: the instance thread runs it"
    );
    let row = host.module("pre-inline").await.expect("pre-inline listed");
    assert_eq!(row["state"], "running", "{row}");
    assert_eq!(row["inline_commands"], json!([]), "{row}");

    for (module, command) in [("echo", "echo"), ("divide", "divide")] {
        let row = host.module(module).await.expect("listed");
        assert_eq!(row["inline_commands"], json!([command]), "{row}");
        assert_eq!(row["demoted_commands"], json!([]), "{row}");
    }
    host.stop().await;
}

#[tokio::test]
async fn inline_calls_over_a_websocket_are_answered_once_each_in_order() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "").await;
    let mut c = Client::authorized(&host, "admin-token").await;
    for i in 0..50 {
        let rid = format!("r{i}");
        assert_eq!(
            c.call("echo", "echo", json!({"i": i}), &rid).await,
            json!({"type": "reply", "requestId": rid, "result": {"i": i}})
        );
        // A requestId of its own: a repeated one gets the first answer again.
        let reply = c
            .call(
                "divide",
                "divide",
                json!({"dividend": 2 * i, "divisor": 2}),
                &format!("d{i}"),
            )
            .await;
        assert_eq!(reply["result"], json!({"quotient": i}), "{i}: {reply}");
    }
    // A panic in a command that is not inline still restarts the module,
    // and the inline command answers afterwards.
    let boom = c.call("divide", "boom", json!({}), "b").await;
    assert_eq!(boom["code"], "module-panicked", "{boom}");
    assert_eq!(
        c.call(
            "divide",
            "divide",
            json!({"dividend": 8, "divisor": 4}),
            "after"
        )
        .await["result"],
        json!({"quotient": 2})
    );
    host.stop().await;
}
