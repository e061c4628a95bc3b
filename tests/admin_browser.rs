//! The admin page in a real browser (issue 20 item 4): headless Chromium
//! through chromedriver logs in, gets the view live over the websocket,
//! sees a module appear when its signed
//! build is dropped into the folder, sees a refused build's reason, resets
//! a degraded module, watches a connection appear and disconnects it. A
//! screenshot of each view is saved under `target/admin-screenshots/`.

use std::path::PathBuf;

use serde_json::json;

use crate::{
    harness::{ADMIN_TOKEN, Client, TestHost, VERSION, Workspace, target_dir},
    webdriver::Browser,
};

fn shots() -> PathBuf {
    target_dir().join("admin-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_watches_modules_and_connections_and_acts() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    // notes' key is trusted from the start; its build comes later.
    ws.key("notes");
    // Short enough that the hung calls below time out soon.
    let host = TestHost::start(&ws, "[modules.echo]\ncall_timeout_ms = 1000").await;
    let base = host.url("");

    // Log in with the token.
    browser.goto(&format!("{base}/admin/")).await;
    browser.wait_text("#login").await;
    browser.screenshot(&shots().join("login.png")).await;
    browser.type_into("input[name=token]", ADMIN_TOKEN).await;
    browser.click("#login button[type=submit]").await;
    browser.wait_text(r#"tr[data-module="echo"]"#).await;
    // The view is live over the host's websocket (not the polling fallback).
    browser.wait_text(r#"main[data-live="ws"]"#).await;

    // A signed build dropped into the folder appears without a reload.
    let notes = Workspace::build_bytes("notes", 0);
    ws.publish("notes.so", &notes, "notes", 1);
    let row = browser
        .wait_text(r#"tr[data-module="notes"][data-state="running"]"#)
        .await;
    assert!(row.contains("notes"), "{row}");

    // A rollback (a lower seq than the running echo's) is refused, with why.
    let old = Workspace::build_bytes("echo", 64);
    ws.publish("echo-old.so", &old, "echo", 0);
    let reason = browser
        .wait_text(r#"tr[data-refused="echo"] td.reason"#)
        .await;
    assert!(
        reason.contains("is not above the highest accepted seq"),
        "{reason}"
    );

    // echo degraded by calls that never return; reset from the page.
    let mut admin = Client::authorized(&host, "admin-token").await;
    for i in 1..=modhost::modules::DEGRADE_AFTER_TIMEOUTS {
        admin
            .send_json(json!({"type": "call", "module": "echo", "command": "sleep",
                "params": {"ms": 20_000}, "requestId": format!("h{i}")}))
            .await;
    }
    let degraded = r#"tr[data-module="echo"][data-state="degraded"]"#;
    browser.wait_text(degraded).await;
    browser.screenshot(&shots().join("modules.png")).await;
    browser.click(&format!("{degraded} button")).await;
    browser
        .wait_text(r#"tr[data-module="echo"][data-state="running"]"#)
        .await;
    let echo = host.module("echo").await.unwrap();
    assert_eq!(
        (&echo["state"], &echo["generation"]),
        (&json!("running"), &json!(2))
    );

    // A connection appears (with its subscription) and is disconnected.
    let mut alice = Client::authorized(&host, "alice-token").await;
    alice
        .subscribe(json!({"target": "message", "customer": "1"}), "r1")
        .await;
    browser.goto(&format!("{base}/admin/connections")).await;
    let row = browser.wait_text(r#"tr[data-user="alice"]"#).await;
    assert!(row.contains("modhost.v1"), "{row}");
    browser.screenshot(&shots().join("connections.png")).await;

    browser.goto(&format!("{base}/admin/rooms")).await;
    let room = browser.wait_text("#rooms code").await;
    assert!(room.contains("message"), "{room}");
    browser.screenshot(&shots().join("rooms.png")).await;

    browser.goto(&format!("{base}/admin/connections")).await;
    browser.click(r#"tr[data-user="alice"] button"#).await;
    let (code, reason) = alice.close_frame().await.expect("a close frame");
    assert_eq!(
        (code, reason.as_str()),
        (4003, "disconnected by an operator")
    );

    browser.goto(&format!("{base}/admin/jobs")).await;
    let empty = browser.wait_text("main p.empty").await;
    assert!(empty.contains("No jobs"), "{empty}");
    browser.screenshot(&shots().join("jobs.png")).await;
    browser.goto(&format!("{base}/admin/config")).await;
    browser.wait_text("#config").await;
    browser.screenshot(&shots().join("config.png")).await;

    // Logged out, the views send the browser back to the login form.
    browser.click("nav form button").await;
    browser.wait_text("#login").await;
    browser.goto(&format!("{base}/admin/modules")).await;
    browser.wait_text("#login").await;
    assert!(browser.url().await.ends_with("/admin/login"));
    browser.quit().await;
    host.stop().await;
}
