//! `modhost jobs launch|list|stop|logs` (issue 17): the CLI over a running
//! host's admin API, the password from stdin only.

use std::{
    io::Write as _,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

use crate::harness_process::ProcessHost;
use crate::{
    harness::{Workspace, modhost_bin},
    jobs_support::{Reaper, app_table, wait_status},
};

fn jobs(ws: &Workspace, host: &ProcessHost, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(modhost_bin())
        .arg("jobs")
        .args(args)
        .arg("--config")
        .arg(ws.path().join("config.toml"))
        .arg("--url")
        .arg(host.url(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read stdin may have exited already.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_cli_launches_lists_reads_logs_and_stops() {
    let ws = Workspace::new();
    let _reaper = Reaper(ws.path().to_owned());
    let host = ProcessHost::start(&ws, &app_table("web", &[], ""));
    let launched = ok(jobs(
        &ws,
        &host,
        &["launch", "web", "--user", "alice", "--password-stdin"],
        "pw from stdin\n",
    ));
    let job: Value = serde_json::from_str(&launched).unwrap();
    let id = job["job_id"].as_str().unwrap().to_owned();
    assert_eq!(job["owner"], "alice", "{job}");
    assert!(!launched.contains("pw from stdin"), "{launched}");
    wait_status(&host.url("/api/call"), &id, "running").await;

    let listed: Value =
        serde_json::from_str(&ok(jobs(&ws, &host, &["list", "--user", "alice"], ""))).unwrap();
    assert_eq!(listed["jobs"][0]["job_id"], id.as_str(), "{listed}");
    let none: Value =
        serde_json::from_str(&ok(jobs(&ws, &host, &["list", "--user", "bob"], ""))).unwrap();
    assert_eq!(none["jobs"], serde_json::json!([]), "{none}");

    let logs = ok(jobs(&ws, &host, &["logs", &id, "--tail", "1"], ""));
    assert!(logs.contains("serving on"), "{logs}");

    let stopped: Value = serde_json::from_str(&ok(jobs(&ws, &host, &["stop", &id], ""))).unwrap();
    assert_eq!(stopped["status"], "stopped", "{stopped}");

    let refused = jobs(&ws, &host, &["launch", "web", "--user", "alice"], "");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("requires a password"), "{err}");
}
