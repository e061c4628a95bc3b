//! A job's process: started without a shell in a process group of its
//! own, told from a later process with the same pid by its start time, and
//! stopped as a group; and the readiness check.
//!
//! The group is what a stop reaches: an app that forks workers (a notebook
//! and its kernels) is stopped whole, and a worker that ignores the stop
//! signal is killed with the rest once the grace period is over.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    process::{Child, Command},
    time::Instant,
};

use super::logs;

/// Environment a job gets from the host's own; the rest of the host's
/// environment (tokens, passwords it was started with) stays out.
const PASSED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ"];

/// How a job is started: everything substituted, ready to exec.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Plan {
    /// The program.
    pub(super) command: String,
    /// Its arguments, each one argv entry.
    pub(super) args: Vec<String>,
    /// Where it runs.
    pub(super) cwd: PathBuf,
    /// Its extra environment.
    pub(super) env: BTreeMap<String, String>,
}

/// Starts `plan` in its own process group, stdout and stderr appended to
/// the job's log; returns the child and its start time.
pub(super) fn spawn(plan: &Plan, job_dir: &Path) -> io::Result<(Child, Option<u64>)> {
    let log = logs::open_for_job(job_dir)?;
    let mut cmd = Command::new(&plan.command);
    cmd.args(&plan.args)
        .current_dir(&plan.cwd)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        // A job outlives the host: a restart re-adopts it.
        .kill_on_drop(false);
    for key in PASSED_ENV {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.envs(&plan.env);
    let child = cmd.spawn()?;
    let ticks = child.id().and_then(start_ticks);
    Ok((child, ticks))
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock
/// ticks since boot. With the pid it names one process for as long as the
/// machine runs. `None` when there is no such process (or it is a zombie).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    // `rest` starts at field 3 (state).
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether process `pid` started at `ticks` is still alive.
pub fn same_process(pid: u32, ticks: u64) -> bool {
    start_ticks(pid) == Some(ticks)
}

/// Sends `signal` to process group `pgid` (the job's pid).
pub(super) fn signal_group(pgid: u32, signal: i32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: killpg only sends a signal; a group that is gone gives ESRCH.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

/// Waits until the app on `port` is ready (a TCP connect, or an HTTP
/// answer on `path` below 500) or `deadline` passes.
pub(super) async fn ready(port: u16, path: Option<&str>, deadline: Instant) -> bool {
    loop {
        if probe(port, path).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn probe(port: u16, path: Option<&str>) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let Some(path) = path else {
            return Some(true);
        };
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let code: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        Some(head.starts_with(b"HTTP/") && code < 500)
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_names_this_process() {
        let me = std::process::id();
        let ticks = start_ticks(me).expect("this process has a start time");
        assert!(same_process(me, ticks));
        assert!(!same_process(me, ticks + 1));
    }
}
