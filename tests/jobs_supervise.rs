//! A job's life after launch (issue 17): a crash is `failed` with its exit
//! code and the restart policy applies; a stop signals the process group,
//! waits the grace period, then kills the whole group; the log stays
//! within its cap.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    harness::{TestHost, Workspace},
    jobs_support::{Reaper, app_table, http_app_table, launch, try_launch, wait_job, wait_status},
};

#[tokio::test]
async fn a_crash_is_failed_with_its_exit_code_and_restarted_as_the_policy_says() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let apps = format!(
        "{}{}",
        app_table("once", &["crash:3"], ""),
        app_table(
            "retry",
            &["crash:4"],
            "restart = \"on-failure\"\nmax_restarts = 2\nrestart_backoff_ms = 100"
        )
    );
    let host = TestHost::start(&ws, &apps).await;
    let once = launch(&host, "once").await;
    let retry = launch(&host, "retry").await;

    let job = wait_status(&host.url("/api/call"), &once, "failed").await;
    assert_eq!(job["exit_code"], 3, "{job}");
    assert_eq!(job["restarts"], 0, "restart = never: {job}");

    let job = wait_job(
        &host.url("/api/call"),
        &retry,
        "failed after its restarts",
        |j| {
            j["status"] == "failed"
                && j["restarts"] == 2
                && !j["message"].to_string().contains("restarting")
        },
    )
    .await;
    assert_eq!(job["exit_code"], 4, "{job}");
    // Failed for good: no third restart comes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, all) = host.call("jobs", "list", json!({})).await;
    let again = all["result"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == retry.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (again["status"].clone(), again["restarts"].clone()),
        (json!("failed"), json!(2))
    );
    host.stop().await;
}

#[tokio::test]
async fn stop_signals_the_group_waits_the_grace_then_kills_every_member() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let host = TestHost::start(
        &ws,
        &app_table("stubborn", &["stubborn"], "stop_grace_ms = 700"),
    )
    .await;
    let id = launch(&host, "stubborn").await;
    let job = wait_status(&host.url("/api/call"), &id, "running").await;
    let dir = std::path::Path::new(job["job_dir"].as_str().unwrap()).to_owned();
    let worker: u32 = std::fs::read_to_string(dir.join("worker.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let leader = job["pid"].as_u64().unwrap() as u32;
    assert!(
        modhost::jobs::start_ticks(worker).is_some(),
        "the worker runs"
    );

    let asked = Instant::now();
    let (status, body) = host.call("jobs", "stop", json!({"job_id": id})).await;
    let took = asked.elapsed();
    eprintln!("stop of a group ignoring SIGTERM answered after {took:?} (grace 700 ms)");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], "stopped", "{body}");
    assert!(
        took >= Duration::from_millis(700),
        "both ignore SIGTERM, so the stop waits the grace first ({took:?})"
    );
    for (what, pid) in [("leader", leader), ("worker", worker)] {
        assert!(
            modhost::jobs::start_ticks(pid).is_none(),
            "the {what} (pid {pid}) was killed with the group"
        );
    }
    host.stop().await;
}

#[tokio::test]
async fn a_flooding_job_keeps_its_log_within_the_cap() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let cap = 16_384u64;
    let extra = format!("log_max_bytes = {cap}\nlog_files = 2");
    let host = TestHost::start(&ws, &app_table("flood", &["flood:3000"], &extra)).await;
    let id = launch(&host, "flood").await;
    // It serves (and is ready) once it has written its 300 kB.
    let job = wait_status(&host.url("/api/call"), &id, "running").await;
    let dir = std::path::Path::new(job["job_dir"].as_str().unwrap()).to_owned();
    let current = dir.join(modhost::jobs::LOG_FILE);
    // One rotation check later the current log is within the cap.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    assert!(size(&current) <= cap, "job.log is {} bytes", size(&current));
    let rotated: Vec<u64> = (1..=3)
        .map(|n| size(&dir.join(format!("{}.{n}", modhost::jobs::LOG_FILE))))
        .collect();
    assert!(rotated[0] > 0 && rotated[1] > 0, "rotated: {rotated:?}");
    assert_eq!(rotated[2], 0, "only log_files = 2 old logs are kept");
    // A 1 ms writer passes the cap by what it writes between two checks
    // (200 ms ≈ 20 kB here; more on a loaded machine), far below the
    // 300 kB written.
    assert!(
        rotated.iter().all(|s| *s <= 150_000),
        "rotated logs {rotated:?}"
    );
    let (_, logs) = host
        .call("jobs", "logs", json!({"job_id": id, "tail": 3}))
        .await;
    let lines = logs["result"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(
        logs.to_string().contains("serving on"),
        "the newest lines: {logs}"
    );
    host.stop().await;
}

#[tokio::test]
async fn an_http_app_is_running_only_once_its_ready_path_answers() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let apps = format!(
        "{}{}",
        http_app_table("slow", &["warming"], "ready_path = \"/\""),
        http_app_table(
            "late",
            &["warming"],
            "ready_path = \"/\"\nready_timeout_ms = 300"
        )
    );
    let host = TestHost::start(&ws, &apps).await;
    let api = host.url("/api/call");
    let asked = Instant::now();
    let slow = launch(&host, "slow").await;
    // It accepts connections at once but answers 503 for a second: until
    // its path answers below 500 it is starting (a TCP check would pass).
    let job = wait_status(&api, &slow, "running").await;
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "running while it answered 503: {job}"
    );
    assert_eq!(job["protocol"], "http");

    let late = launch(&host, "late").await;
    let job = wait_status(&api, &late, "failed").await;
    assert!(
        job["message"]
            .as_str()
            .unwrap()
            .contains("not ready within 300 ms"),
        "{job}"
    );
    host.stop().await;
}

#[tokio::test]
async fn restart_starts_a_running_job_again_on_its_port() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let host = TestHost::start(&ws, &app_table("web", &[], "")).await;
    let api = host.url("/api/call");
    let id = launch(&host, "web").await;
    let first = wait_status(&api, &id, "running").await;
    let (status, body) = host.call("jobs", "restart", json!({"job_id": id})).await;
    assert_eq!(status, 200, "{body}");
    let again = wait_status(&api, &id, "running").await;
    assert_ne!(again["pid"], first["pid"], "a new process: {again}");
    assert_eq!(again["port"], first["port"], "{again}");
    assert_eq!(again["restarts"], 1, "{again}");
    let old = first["pid"].as_u64().unwrap() as u32;
    assert!(
        modhost::jobs::start_ticks(old).is_none(),
        "the old process is gone"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_stop_longer_than_the_call_timeout_answers_in_time_and_still_ends_the_job() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let apps = format!(
        "{}\n[modules.jobs]\ncall_timeout_ms = 500\n",
        app_table("stubborn", &["stubborn"], "stop_grace_ms = 3000")
    );
    let host = TestHost::start(&ws, &apps).await;
    let id = launch(&host, "stubborn").await;
    wait_status(&host.url("/api/call"), &id, "running").await;
    let asked = Instant::now();
    let (status, body) = host.call("jobs", "stop", json!({"job_id": id})).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        asked.elapsed() < Duration::from_millis(2500),
        "{:?}",
        asked.elapsed()
    );
    assert!(body.to_string().contains("call_timeout_ms"), "{body}");
    wait_status(&host.url("/api/call"), &id, "stopped").await;
    host.stop().await;
}

#[tokio::test]
async fn a_job_waiting_to_restart_still_counts_towards_the_limit() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let extra = "restart = \"on-failure\"\nrestart_backoff_ms = 5000\nmax_jobs_per_user = 1";
    let host = TestHost::start(&ws, &app_table("retry", &["crash:5"], extra)).await;
    let id = launch(&host, "retry").await;
    wait_job(&host.url("/api/call"), &id, "waiting to restart", |j| {
        j["message"].to_string().contains("restarting in")
    })
    .await;
    let (status, body) = try_launch(&host, "retry").await;
    assert_eq!(status, 429, "{body}");
    // Stopped while it waits: it is not started again.
    let (status, body) = host.call("jobs", "stop", json!({"job_id": id})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], "stopped", "{body}");
    assert_eq!(body["result"]["restarts"], 0, "{body}");
    host.stop().await;
}
