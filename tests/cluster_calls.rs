//! Module calls across hosts (issue 19 item 3, issue 20 item 2's NATS
//! status): a module loaded only on one host answers calls made on
//! another (websocket, `/api/call`, module to module) with the caller
//! stamped where the call was made; streams, errors and timeouts come
//! back as they would locally; `unknown-module` only when no host has
//! it; a module unloaded or a host killed leaves the directory within
//! seconds, a call in flight then answered `module-unavailable`; a module
//! this host has is always called here; `/metrics` reports the link and
//! the calls.

use std::time::{Duration, Instant};

use prometheus_parse::Scrape;
use serde_json::{Value, json};

use crate::harness_process::ProcessHost;
use crate::{
    harness::{Client, VERSION, Workspace, admin_call},
    metrics::{scrape, series, total},
    nats_harness::{Member, Nats, cluster_config},
};

/// A module that left another host is gone from this one's directory
/// within its expiry (3 s) and an announcement period (1 s); the rest is
/// room for a busy machine.
const LEAVES_WITHIN: Duration = Duration::from_secs(10);

/// The answer to a command no module has: `unknown-command` once `url`'s
/// host knows `module` (here or on another host), `unknown-module` before.
async fn probe(url: &str, module: &str) -> Value {
    let (_, body) = admin_call(
        &format!("{url}/api/call"),
        module,
        "no-such-command",
        json!({}),
    )
    .await;
    body["error"]["code"].clone()
}

/// Waits until the host at `url` can call `module`.
async fn wait_known(url: &str, module: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe(url, module).await != "unknown-command" {
        assert!(Instant::now() < deadline, "{module} never reached {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the host at `url` no longer knows `module`; how long that took.
async fn wait_unknown(url: &str, module: &str) -> Duration {
    let start = Instant::now();
    while probe(url, module).await != "unknown-module" {
        assert!(
            start.elapsed() < LEAVES_WITHIN,
            "{module} still callable from {url} after {LEAVES_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Calls echo's `sleep` from `admin` (as `rid`), then `cut` what serves
/// it once it is running: the call must be answered `module-unavailable`,
/// its message saying `why`, within [`LEAVES_WITHIN`] of the cut.
async fn cut_mid_call(admin: &mut Client, rid: &str, why: &str, cut: impl FnOnce()) {
    admin
        .send_json(json!({"type":"call","module":"echo","command":"sleep","params":{"ms": 50000},"requestId":rid}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cut_at = Instant::now();
    cut();
    let answer = admin.next().await;
    assert_eq!(answer["code"], "module-unavailable", "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains(why),
        "{answer}"
    );
    assert!(cut_at.elapsed() < LEAVES_WITHIN, "{:?}", cut_at.elapsed());
}

/// Sends a call and returns its first answer frame.
async fn call(c: &mut Client, module: &str, command: &str, params: Value, rid: &str) -> Value {
    c.call(module, command, params, rid).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_on_another_host_answers_as_it_would_locally() {
    let nats = Nats::start();
    let b = Member::with_modules(
        &nats,
        "b",
        "[modules.echo]\ncall_timeout_ms = 1000",
        &["echo", "divide"],
    )
    .await;
    let a = Member::with_modules(&nats, "a", "", &["relay"]).await;
    let url = a.host.url("");
    assert!(a.host.module("echo").await.is_none(), "echo runs only on b");
    wait_known(&url, "echo").await;
    wait_known(&url, "divide").await;

    // The caller is who a authenticated, whatever the params claim.
    let mut alice = Client::authorized(&a.host, "alice-token").await;
    let who = call(
        &mut alice,
        "echo",
        "whoami",
        json!({"user": "mallory", "kind": "operator", "roles": ["admin"]}),
        "1",
    )
    .await;
    assert_eq!(who["type"], "reply", "{who}");
    assert_eq!(who["result"]["kind"], "user", "{who}");
    assert_eq!(who["result"]["user"], "alice", "{who}");
    assert_eq!(who["result"]["roles"], json!(["user"]), "{who}");
    assert!(
        !who["result"]["session"].as_str().unwrap().is_empty(),
        "{who}"
    );
    // A module on a calls the module on b for the same user.
    let relayed = call(
        &mut alice,
        "relay",
        "relay",
        json!({"module": "echo", "command": "whoami", "params": {}}),
        "2",
    )
    .await;
    assert_eq!(relayed["result"]["result"]["kind"], "module", "{relayed}");
    assert_eq!(relayed["result"]["result"]["module"], "relay", "{relayed}");
    assert_eq!(relayed["result"]["result"]["user"], "alice", "{relayed}");
    // The operator on a's /api/call.
    let (status, op) = a.host.call("echo", "whoami", json!({})).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["result"]["kind"], "operator", "{op}");

    // A stream: every item in order, then the last.
    alice
        .send_json(json!({"type":"call","module":"echo","command":"count","params":{"n": 30},"requestId":"s"}))
        .await;
    for i in 1..=30 {
        let item = alice.next().await;
        assert_eq!(item["requestId"], "s", "{item}");
        assert_eq!(item["result"]["i"], i, "{item}");
        assert_eq!(item["done"], i == 30, "{item}");
    }

    // Errors and their codes, from b's module or a's checks.
    let cases = [
        (
            "divide",
            "divide",
            json!({"dividend": 1, "divisor": 0}),
            "module-error",
        ),
        ("divide", "boom", json!({}), "module-panicked"),
        ("divide", "divide", json!({"dividend": 1}), "missing-param"),
        ("echo", "sleep", json!({"ms": 1}), "forbidden"),
        ("echo", "nope", json!({}), "unknown-command"),
        ("ghost", "x", json!({}), "unknown-module"),
    ];
    for (i, (module, command, params, code)) in cases.into_iter().enumerate() {
        let e = call(&mut alice, module, command, params, &format!("e{i}")).await;
        assert_eq!(e["code"], code, "{module}.{command}: {e}");
    }
    let e = call(
        &mut alice,
        "divide",
        "divide",
        json!({"dividend": 1, "divisor": 0}),
        "m",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("division by zero"),
        "{e}"
    );

    // b's timeout for echo (1 s, a waits 0.5 s more), not a's default
    // (30 s); the bound leaves room for a busy machine.
    let mut admin = Client::authorized(&a.host, "admin-token").await;
    let start = Instant::now();
    let late = call(&mut admin, "echo", "sleep", json!({"ms": 5000}), "t").await;
    assert_eq!(late["code"], "module-timeout", "{late}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );

    a.host.stop().await;
    b.host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn modules_that_leave_another_host_leave_the_directory_within_seconds() {
    let mut nats = Nats::start();
    let a = Member::start(&nats, "a", "").await;
    let url = a.host.url("");

    // Unloaded on b: no longer offered.
    let b = Member::with_modules(&nats, "b", "", &["echo"]).await;
    wait_known(&url, "echo").await;
    std::fs::remove_file(b.workspace().plugins().join("echo.so")).unwrap();
    wait_unknown(&url, "echo").await;
    b.host.stop().await;

    // c killed with a call in flight: the call is answered, then the
    // module is gone.
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let config = cluster_config(&nats.url(), "c", "[modules.echo]\ncall_timeout_ms = 60000");
    let mut c = ProcessHost::start(&ws, &config);
    wait_known(&url, "echo").await;
    let mut admin = Client::authorized(&a.host, "admin-token").await;
    cut_mid_call(&mut admin, "k", "left the cluster", || c.kill9()).await;
    wait_unknown(&url, "echo").await;

    // The link lost mid-call: answered at once, not at the timeout.
    let d = Member::with_modules(
        &nats,
        "d",
        "[modules.echo]\ncall_timeout_ms = 60000",
        &["echo"],
    )
    .await;
    wait_known(&url, "echo").await;
    // The lost link answers it, before d's silence would.
    cut_mid_call(&mut admin, "l", "link was lost", || nats.kill()).await;

    a.host.stop().await;
    d.host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_module_this_host_has_is_called_here() {
    let nats = Nats::start();
    let a = Member::with_modules(&nats, "a", "", &["echo"]).await;
    let b = Member::with_modules(&nats, "b", "", &["echo"]).await;
    // a knows b's echo: the directory has it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = scrape(&a.host.url("/metrics"), None).await;
        if total(&page.unwrap(), "modhost_cluster_remote_modules") >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "a never heard of b's modules");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut alice = Client::authorized(&a.host, "alice-token").await;
    for i in 0..20 {
        let r = call(&mut alice, "echo", "echo", json!({"i": i}), &i.to_string()).await;
        assert_eq!(r["result"]["i"], i, "{r}");
    }
    let (_, a_page) = scrape(&a.host.url("/metrics"), None).await;
    let (_, b_page) = scrape(&b.host.url("/metrics"), None).await;
    let sent = [("direction", "sent")];
    let served = [("direction", "served")];
    assert_eq!(
        series(&a_page.unwrap(), "modhost_cluster_remote_calls", &sent),
        0.0
    );
    assert_eq!(
        series(&b_page.unwrap(), "modhost_cluster_remote_calls", &served),
        0.0
    );
    a.host.stop().await;
    b.host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_report_the_link_and_the_calls_across_hosts() {
    let nats = Nats::start();
    let b = Member::with_modules(&nats, "b", "", &["echo"]).await;
    let a = Member::start(&nats, "a", "").await;
    let url = a.host.url("");
    wait_known(&url, "echo").await;
    let mut alice = Client::authorized(&a.host, "alice-token").await;
    for i in 0..5 {
        let r = call(&mut alice, "echo", "echo", json!({"i": i}), &i.to_string()).await;
        assert_eq!(r["result"]["i"], i, "{r}");
    }
    let (status, page) = scrape(&a.host.url("/metrics"), None).await;
    assert_eq!(status, 200);
    let a_page = page.unwrap();
    let (_, b_page) = scrape(&b.host.url("/metrics"), None).await;
    let b_page = b_page.unwrap();
    let sent = [("direction", "sent")];
    let served = [("direction", "served")];
    // The probes of wait_known went to b too (as unknown-command they did
    // not: a checks commands itself), so exactly the five calls.
    assert_eq!(series(&a_page, "modhost_cluster_remote_calls", &sent), 5.0);
    assert_eq!(
        series(&b_page, "modhost_cluster_remote_calls", &served),
        5.0
    );
    assert_eq!(
        series(&a_page, "modhost_cluster_remote_calls", &served),
        0.0
    );
    assert_eq!(total(&a_page, "modhost_cluster_connected"), 1.0);
    assert_eq!(total(&a_page, "modhost_cluster_calls_connected"), 1.0);
    assert_eq!(total(&a_page, "modhost_cluster_hosts"), 1.0);
    assert_eq!(total(&a_page, "modhost_cluster_remote_modules"), 1.0);
    assert_eq!(
        total(&a_page, "modhost_cluster_remote_calls_in_flight"),
        0.0
    );
    for family in [
        "modhost_cluster_disconnects",
        "modhost_cluster_dropped_publications",
        "modhost_cluster_remote_call_failures",
    ] {
        assert!(
            a_page
                .samples
                .iter()
                .any(|s| s.metric == format!("{family}_total")),
            "{family} missing"
        );
    }
    // b stops: its goodbye (sent before stop returns) empties a's
    // directory, counted as a goodbye and not as a host falling silent
    // (which a counts only 3 s after b's last announcement).
    let (_, page) = scrape(&a.host.url("/metrics"), None).await;
    let hosts_left = |page: &Scrape, reason: &str| {
        series(page, "modhost_cluster_hosts_left", &[("reason", reason)])
    };
    let page = page.unwrap();
    assert_eq!(hosts_left(&page, "goodbye"), 0.0);
    assert_eq!(hosts_left(&page, "silent"), 0.0);
    b.host.stop().await;
    let deadline = Instant::now() + LEAVES_WITHIN;
    let page = loop {
        let (_, page) = scrape(&a.host.url("/metrics"), None).await;
        let page = page.unwrap();
        if total(&page, "modhost_cluster_hosts") == 0.0 {
            break page;
        }
        assert!(Instant::now() < deadline, "b did not leave a's directory");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        hosts_left(&page, "goodbye"),
        1.0,
        "b's goodbye did not reach a"
    );
    assert_eq!(hosts_left(&page, "silent"), 0.0);
    a.host.stop().await;
}
