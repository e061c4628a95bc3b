//! Jobs outlive the host (issue 17 item 5): after `kill -9` of the real
//! binary, the next start re-adopts the job still running (same pid, same
//! start time), starts nothing twice, keeps its port held and can stop it;
//! a job whose process died meanwhile is marked lost.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness_process::ProcessHost;
use crate::{
    harness::Workspace,
    jobs_support::{Reaper, all_jobs, app_table, https_get, processes_under, wait_status},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_with_sigkill_re_adopts_its_running_job_and_starts_nothing_twice() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let apps = app_table("web", &[], "port_range = [20000, 29999]");
    let mut host = ProcessHost::start(&ws, &apps);
    let launch = |host: &ProcessHost| {
        let api = host.url("/api/call");
        async move {
            let params = json!({"app": "web", "password": "pw", "user": "alice"});
            let (status, body) = crate::harness::admin_call(&api, "jobs", "launch", params).await;
            assert_eq!(status, 200, "{body}");
            body["result"].clone()
        }
    };
    let kept = launch(&host).await;
    let gone = launch(&host).await;
    let (kept_id, gone_id) = (
        kept["job_id"].as_str().unwrap(),
        gone["job_id"].as_str().unwrap(),
    );
    let api = host.url("/api/call");
    let running = wait_status(&api, kept_id, "running").await;
    wait_status(&api, gone_id, "running").await;
    let pid = running["pid"].as_u64().unwrap() as u32;
    let ticks = modhost::jobs::start_ticks(pid).unwrap();

    host.kill9();
    // The job runs on without its host; the other one dies meanwhile.
    let port = running["port"].as_u64().unwrap();
    let cert = running["cert"].as_str().unwrap();
    assert_eq!(
        https_get(port, cert, "pw").0,
        200,
        "the job outlives its host"
    );
    let gone_pid = gone["pid"].as_i64().unwrap() as i32;
    // SAFETY: only sends a signal to the test's own job's group.
    unsafe { libc::killpg(gone_pid, libc::SIGKILL) };
    while modhost::jobs::start_ticks(gone_pid as u32).is_some() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let restarted = Instant::now();
    let host = ProcessHost::start(&ws, &apps);
    let api = host.url("/api/call");
    let jobs = all_jobs(&api).await;
    eprintln!("re-adopted within {:?} of the restart", restarted.elapsed());
    let find = |id: &str| jobs.iter().find(|j| j["job_id"] == id).cloned().unwrap();
    let again = find(kept_id);
    assert_eq!(again["status"], "running", "re-adopted: {again}");
    assert_eq!(again["pid"], running["pid"], "the same process: {again}");
    assert_eq!(again["restarts"], 0, "{again}");
    assert!(modhost::jobs::same_process(pid, ticks));
    let lost = find(gone_id);
    assert_eq!(lost["status"], "lost", "{lost}");

    let dir = std::path::Path::new(running["job_dir"].as_str().unwrap()).to_owned();
    assert_eq!(processes_under(&dir), vec![pid], "nothing started twice");
    let log = std::fs::read_to_string(dir.join(modhost::jobs::LOG_FILE)).unwrap();
    assert_eq!(log.matches("serving on").count(), 1, "{log}");

    // Its port stays held: the next launch gets another one.
    let third = launch(&host).await;
    assert_ne!(third["port"], running["port"], "{third}");

    // The new host stops the job it did not start, group and all.
    let (status, body) =
        crate::harness::admin_call(&api, "jobs", "stop", json!({"job_id": kept_id})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], "stopped", "{body}");
    assert!(
        modhost::jobs::start_ticks(pid).is_none(),
        "the adopted job was stopped"
    );
    drop(host);
}
