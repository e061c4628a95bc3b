//! Room history across restarts and under many rooms (issue 18): without
//! `persist` a restart gives every room a new epoch and returning clients
//! are told `complete:false`; with it they recover. The history stays
//! within `[history] max_bytes` however many rooms are published to.

use std::time::Instant;

use serde_json::json;

use crate::harness_process::ProcessHost;
use crate::{
    harness::{Client, TRIGGER_TOKEN, TestHost, Workspace},
    history_recovery::{customer, history, live, publish, recovered, subscribe},
};

/// Subscribes to customer 1, sees 3 publications, and leaves; returns
/// the position it last saw.
async fn see_three_and_leave(host: &TestHost) -> serde_json::Value {
    let mut c = Client::authorized(host, "alice-token").await;
    let reply = subscribe(&mut c, customer("1"), "s", None).await;
    for n in 1..=3 {
        publish(host, json!([customer("1")]), n).await;
    }
    for n in 1..=3 {
        assert_eq!(live(&mut c).await, (n, n));
    }
    c.close().await;
    json!({"offset": 3, "epoch": reply["epoch"]})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_without_persistence_is_a_new_epoch_and_incomplete() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, &history(100)).await;
    let since = see_three_and_leave(&host).await;
    host.stop().await;

    let host = TestHost::start(&ws, &history(100)).await;
    publish(&host, json!([customer("1")]), 4).await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let reply = subscribe(&mut c, customer("1"), "s", Some(since.clone())).await;
    assert_ne!(reply["epoch"], since["epoch"]);
    assert_eq!(recovered(&mut c).await, (vec![], false));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_persistence_a_restart_keeps_the_epoch_and_recovers() {
    let ws = Workspace::new();
    let config = format!("[history]\npersist = true\n{}", history(100));
    let host = TestHost::start(&ws, &config).await;
    let since = see_three_and_leave(&host).await;
    for n in 4..=6 {
        publish(&host, json!([customer("1")]), n).await;
    }
    host.stop().await;
    assert!(ws.path().join("state/history.json").exists());

    let host = TestHost::start(&ws, &config).await;
    // Read once: a crash from here on must not bring this history back.
    assert!(!ws.path().join("state/history.json").exists());
    publish(&host, json!([customer("1")]), 7).await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let reply = subscribe(&mut c, customer("1"), "s", Some(since.clone())).await;
    assert_eq!(
        (&reply["epoch"], &reply["offset"]),
        (&since["epoch"], &json!(7))
    );
    let (got, complete) = recovered(&mut c).await;
    assert!(complete);
    assert_eq!(got, vec![(4, 4), (5, 5), (6, 6), (7, 7)]);
    host.stop().await;
}

/// Rooms published to, 64 to a publish (the default
/// `[limits] max_rooms_per_publish`), each with a 1 KB publication.
const ROOMS: usize = 50_000;
const ROOMS_PER_PUBLISH: usize = 64;

#[tokio::test(flavor = "multi_thread")]
async fn memory_stays_bounded_with_many_rooms() {
    let ws = Workspace::new();
    let max_bytes = 4 * 1024 * 1024;
    let config = format!("[history]\nmax_bytes = {max_bytes}\n{}", history(100));
    let mut host = ProcessHost::start(&ws, &config);
    let base = format!("http://{}", host.addr);
    let before = host.rss_kib();
    let payload = "x".repeat(1000);
    let started = Instant::now();
    let mut peak = before;
    for first in (0..ROOMS).step_by(ROOMS_PER_PUBLISH) {
        let rooms: Vec<_> = (first..(first + ROOMS_PER_PUBLISH).min(ROOMS))
            .map(|i| customer(&i.to_string()))
            .collect();
        let body = json!({"rooms": rooms, "data": payload}).to_string();
        let resp = crate::harness::http()
            .post(format!("{base}/trigger/"))
            .bearer_auth(TRIGGER_TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        if first % (ROOMS_PER_PUBLISH * 100) == 0 {
            peak = peak.max(host.rss_kib());
        }
    }
    let after = host.rss_kib();
    peak = peak.max(after);
    // The history counts what it keeps, and keeps within its bound.
    let room = "%7B%22target%22%3A%22message%22%2C%22customer%22%3A%2249999%22%7D";
    let resp = crate::harness::http()
        .get(format!("{base}/api/rooms/history?room={room}"))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let kept = body["history_bytes"].as_u64().unwrap();
    assert!(kept <= max_bytes, "{kept} bytes kept, bound {max_bytes}");
    assert!(
        kept > max_bytes / 2,
        "{kept}: the bound is used, not the rooms dropped early"
    );
    // The first rooms were dropped whole to make room.
    let first = "%7B%22target%22%3A%22message%22%2C%22customer%22%3A%220%22%7D";
    let resp = crate::harness::http()
        .get(format!("{base}/api/rooms/history?room={first}"))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Far below 50,000 rooms × 1 KB kept: 49 MB.
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(grown_mib < 40, "RSS grew {grown_mib} MiB");
    println!(
        "history: {ROOMS} rooms x 1 KB in {:?}: {kept} bytes kept (bound {max_bytes}); RSS before {} MiB, peak {} MiB, after {} MiB",
        started.elapsed(),
        before / 1024,
        peak / 1024,
        after / 1024
    );
    host.child.kill().ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_from_before_a_run_without_persistence_is_not_read_back() {
    let ws = Workspace::new();
    let persisted = format!("[history]\npersist = true\n{}", history(100));
    let host = TestHost::start(&ws, &persisted).await;
    let since = see_three_and_leave(&host).await;
    host.stop().await;
    assert!(ws.path().join("state/history.json").exists());

    // A run without persist publishes what the old snapshot does not hold.
    let host = TestHost::start(&ws, &history(100)).await;
    publish(&host, json!([customer("1")]), 4).await;
    host.stop().await;

    let host = TestHost::start(&ws, &persisted).await;
    let mut c = Client::authorized(&host, "alice-token").await;
    let reply = subscribe(&mut c, customer("1"), "s", Some(since.clone())).await;
    assert_ne!(reply["epoch"], since["epoch"]);
    assert_eq!(recovered(&mut c).await, (vec![], false));
    host.stop().await;
}
