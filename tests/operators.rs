//! What operators see (issue 16 item 5): log lines as `[log] format` says
//! (JSON that parses line by line; no colour codes when the output is not
//! a terminal), `run --help` on `MODHOST_LOG` and file watching, and
//! `modhost status`.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::harness_process::ProcessHost;
use crate::{
    harness::{Client, TestHost, VERSION, Workspace, built_lib, modhost_bin},
    modules::cli,
};

/// Bundled echo, and a file the host refuses (no `.sig`), so the log has
/// load and refusal lines in it.
fn workspace() -> Workspace {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    std::fs::copy(built_lib("divide"), ws.plugins().join("stray.so")).unwrap();
    ws
}

#[tokio::test]
async fn json_logs_parse_line_by_line() {
    let ws = workspace();
    let mut host = ProcessHost::start(&ws, "[log]\nformat = \"json\"");
    let (status, _) = host.call("echo", "echo", json!({})).await;
    assert_eq!(status, 200);
    let _ = host.terminate(Duration::from_secs(20));
    let log = host.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
    };
    let loaded = find("module loaded and serving");
    assert_eq!(
        (
            &loaded["level"],
            &loaded["fields"]["module"],
            &loaded["fields"]["seq"]
        ),
        (&json!("info"), &json!("echo"), &json!(1)),
        "{loaded}"
    );
    assert_eq!(find("no signature")["level"], "error");
}

#[test]
fn text_logs_carry_no_colour_codes_into_a_file() {
    let ws = workspace();
    let config = ws.path().join("config.toml");
    std::fs::write(&config, ws.config_text("")).unwrap();
    let log = ws.path().join("host.log");
    let mut child = Command::new(modhost_bin())
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(ws.path())
        .env_remove("NO_COLOR")
        .env("MODHOST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    let mut text = String::new();
    while !text.contains("no signature") && began.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
        text.clear();
        std::fs::File::open(&log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("module loaded and serving"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a file:\n{text:?}"
    );
}

#[test]
fn run_help_tells_about_the_log_and_watching() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = cli(dir.path(), &["run", "--help"]);
    assert_eq!(code, Some(0), "{out}");
    for needle in [
        "MODHOST_LOG",
        "watches",
        "[log] format",
        "without a restart",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
}

// Multi-threaded: the in-process host serves while `modhost status`, a
// blocking child process, waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_modules_refusals_connections_and_rooms() {
    let ws = workspace();
    ws.write_config("");
    let host = TestHost::start(&ws, "").await;
    let mut alice = Client::authorized(&host, "alice-token").await;
    alice
        .subscribe(json!({"target": "message", "customer": "1"}), "1")
        .await;
    let config = ws.path().join("config.toml");
    let url = host.url("");
    let status = |args: &[&str]| {
        let mut all = vec!["status", "--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        cli(ws.path(), &all)
    };
    // The refusal of stray.so comes once the watcher has seen it settle.
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        let (code, out) = status(&["--url", &url]);
        assert_eq!(code, Some(0), "{out}");
        if out.contains("no signature") || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for needle in [
        "modules: 2 (1 running)",
        "echo             running   0.1.0 seq 1 generation 1",
        "stray.so: no signature",
        "connections: 1 (1 open, 0 parked); users: alice",
        "rooms: 1",
        "\"customer\":\"1\"",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
    // The config's own listen address (port 0 here) answers nothing: the
    // error says what to do.
    let (code, out) = status(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cannot reach the host") && out.contains("--url"),
        "{out}"
    );
    alice.close().await;
    host.stop().await;
}
