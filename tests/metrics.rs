//! `/metrics` (issue 20 item 2): every family the issue lists is present
//! and moves under a small load, read by a Prometheus text parser; the
//! page needs `[metrics] token` when one is set, and moves to
//! `[metrics] listen` when that is set.

use std::{sync::atomic::Ordering, time::Duration};

use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

use crate::{
    harness::{ADMIN_TOKEN, Client, TRIGGER_TOKEN, TestHost, Workspace, http},
    jobs_support::{Reaper, http_app_table, launch, wait_status},
};

const METRICS_TOKEN: &str = "metrics-scraper-token";

/// `GET url` with `token`: the status and, on 200, the parsed page.
pub(crate) async fn scrape(url: &str, token: Option<&str>) -> (u16, Option<Scrape>) {
    let mut req = http().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let text = resp.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = Scrape::parse(lines).expect("a Prometheus parser reads /metrics");
    (status, Some(parsed))
}

/// The sum over every series of `family`: counters (`<family>_total`) and
/// gauges by value, histograms by their observation count (`+Inf`).
pub(crate) fn total(scrape: &Scrape, family: &str) -> f64 {
    series(scrape, family, &[])
}

/// The sum of the `family` series whose labels include `labels` (every
/// series for none), read as [`total`] says.
pub(crate) fn series(scrape: &Scrape, family: &str, labels: &[(&str, &str)]) -> f64 {
    let counter = format!("{family}_total");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == family || s.metric == counter)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Sample::Summary(_) => 0.0,
        })
        .sum()
}

async fn trigger(host: &TestHost, rooms: Value, data: Value) {
    let body = json!({"rooms": rooms, "data": data}).to_string();
    let (status, text) = host.trigger(Some(TRIGGER_TOKEN), &body).await;
    assert_eq!(status, 200, "{text}");
}

/// The families the issue lists, each of which the load below moves (the
/// gauges are read while the load still holds them up).
const MOVING: &[&str] = &[
    "modhost_connections_open",
    "modhost_sessions_parked",
    "modhost_rooms",
    "modhost_subscriptions",
    "modhost_publishes",
    "modhost_ws_messages_sent",
    "modhost_ws_messages_dropped",
    "modhost_slow_consumers_closed",
    "modhost_calls",
    "modhost_call_duration_seconds",
    "modhost_module_starts",
    "modhost_module_refusals",
    "modhost_config_reloads",
    "modhost_jobs",
];

/// Present, not necessarily moved by this load.
const PRESENT: &[&str] = &["modhost_history_bytes", "modhost_config_reload_failed"];

#[tokio::test]
async fn every_family_is_present_and_moves_under_a_small_load() {
    let mut ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    ws.install_bundled();
    let extra = format!(
        "[metrics]\ntoken = \"{METRICS_TOKEN}\"\n[limits]\nsend_queue = 64\n{}",
        http_app_table("web", &[], "")
    );
    ws.write_config(&extra);
    let host = TestHost::start(&ws, &extra).await;
    let url = host.url("/metrics");

    // The page is the scraper's: no token, or the admin's, is refused.
    assert_eq!(scrape(&url, None).await.0, 401);
    assert_eq!(scrape(&url, Some(ADMIN_TOKEN)).await.0, 401);
    let (status, before) = scrape(&url, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200);
    let before = before.unwrap();
    // A host without [cluster] reports no NATS families.
    assert!(
        !before
            .samples
            .iter()
            .any(|s| s.metric.starts_with("modhost_cluster_")),
        "cluster families on a host that runs alone"
    );

    // Connections, a subscription, a publish delivered, calls ok and not.
    let mut alice = Client::authorized(&host, "alice-token").await;
    let room = json!({"target": "message", "customer": "1"});
    alice.subscribe(room.clone(), "s").await;
    trigger(&host, json!([room]), json!({"hello": 1})).await;
    assert_eq!(alice.next().await["data"]["hello"], 1);
    let ok = alice.call("echo", "echo", json!({"x": 1}), "c1").await;
    assert_eq!(ok["result"]["x"], 1, "{ok}");
    let refused = alice.call("echo", "no-such-command", json!({}), "c2").await;
    assert_eq!(refused["code"], "unknown-command", "{refused}");
    // A parked session: a connection that breaks (no close frame).
    let parked = Client::authorized(&host, "bob-token").await;
    drop(parked);

    // A refused build, a swap, a reset.
    ws.publish_bytes("broken.so", b"not a library", "not a signature");
    let bytes = Workspace::build_bytes("echo", 64);
    ws.publish("echo.so", &bytes, "echo", 2);
    host.wait_module("echo", "swapped to seq 2", |m| m["seq"] == 2)
        .await;
    assert_eq!(host.reset("echo").await.0, 200);

    // A config.toml reload.
    ws.write_config(&format!("{extra}\n[gateway]\nstatus = \"admins\"\n"));

    // A job, started and stopped.
    let job = launch(&host, "web").await;
    wait_status(&host.url("/api/call"), &job, "running").await;

    // A client that never reads: dropped messages, then closed as slow.
    let mut stuck = Client::authorized(&host, "bob-token").await;
    let slow_room = json!({"target": "message", "customer": "2"});
    stuck.subscribe(slow_room.clone(), "s").await;
    let pad = "x".repeat(16 * 1024);
    let counters = &host.state.sessions.counters;
    for i in 0..4000 {
        if counters.slow_consumers_closed.load(Ordering::Relaxed) > 0 {
            break;
        }
        trigger(&host, json!([slow_room]), json!({"i": i, "pad": pad})).await;
    }

    let mut after = None;
    for _ in 0..250 {
        let (_, scraped) = scrape(&url, Some(METRICS_TOKEN)).await;
        let scraped = scraped.unwrap();
        let moved = MOVING
            .iter()
            .all(|f| total(&scraped, f) > total(&before, f));
        after = Some(scraped);
        if moved {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let after = after.unwrap();
    for family in MOVING.iter().chain(PRESENT) {
        assert!(
            after.docs.contains_key(*family),
            "{family} is not on /metrics"
        );
    }
    for family in MOVING {
        assert!(
            total(&after, family) > total(&before, family),
            "{family} did not move: {} before, {} after",
            total(&before, family),
            total(&after, family)
        );
    }
    // The labels the issue asks for.
    let echo_ok = [("module", "echo"), ("command", "echo"), ("code", "ok")];
    assert!(series(&after, "modhost_calls", &echo_ok) >= 1.0);
    let unknown = [
        ("module", "echo"),
        ("command", ""),
        ("code", "unknown-command"),
    ];
    assert!(series(&after, "modhost_calls", &unknown) >= 1.0);
    let timed = [("module", "echo"), ("command", "echo")];
    assert!(series(&after, "modhost_call_duration_seconds", &timed) >= 1.0);
    for how in ["load", "swap", "reset"] {
        assert!(
            series(&after, "modhost_module_starts", &[("how", how)]) >= 1.0,
            "{how}"
        );
    }
    assert!(
        series(
            &after,
            "modhost_module_refusals",
            &[("reason", "signature")]
        ) >= 1.0
    );
    assert_eq!(series(&after, "modhost_jobs", &[("state", "running")]), 1.0);

    let (status, body) = host.call("jobs", "stop", json!({"job_id": job})).await;
    assert_eq!(status, 200, "{body}");
    let (_, stopped) = scrape(&url, Some(METRICS_TOKEN)).await;
    let stopped = stopped.unwrap();
    assert_eq!(
        series(&stopped, "modhost_jobs", &[("state", "stopped")]),
        1.0
    );
    assert_eq!(
        series(&stopped, "modhost_jobs", &[("state", "running")]),
        0.0
    );
    host.stop().await;
}

#[tokio::test]
async fn metrics_listen_serves_the_page_there_and_not_on_the_main_port() {
    let ws = Workspace::new();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let host = TestHost::start(&ws, &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).await;
    assert_eq!(scrape(&host.url("/metrics"), None).await.0, 404);
    let (status, page) = scrape(&format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(page.unwrap().docs.contains_key("modhost_connections_open"));
    host.stop().await;
}
