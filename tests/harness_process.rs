//! Test harness, processes: the real `modhost` binary as a child process
//! (its own memory, rlimits, SIGKILL), and this process's limits.

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::Value;

use crate::harness::{TRIGGER_TOKEN, Workspace, admin_call, api_modules, unique};
use crate::harness_build::modhost_bin;
use crate::harness_client::{Client, http};

/// Resident memory of process `pid` in KiB (`VmRSS` in /proc).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Raises this process's soft open-files limit to `want` (at most the hard
/// limit); returns the soft limit now in force. Children inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// Strips ANSI colour sequences from log text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Resource limits for a [`ProcessHost`] (setrlimit before exec).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessLimits {
    /// RLIMIT_AS, bytes.
    pub address_space: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files: Option<u64>,
}

/// The real `modhost` binary running on a workspace, as a child process:
/// its memory is its own (RSS is measured without the test's clients), and
/// it can be killed with SIGKILL.
pub struct ProcessHost {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    log: PathBuf,
}

impl ProcessHost {
    /// Writes `ws`'s config with `extra` appended and starts the binary on
    /// it; waits until it listens.
    pub fn start(ws: &Workspace, extra: &str) -> ProcessHost {
        Self::start_with(ws, extra, ProcessLimits::default())
    }

    /// Like `start`, with rlimits set on the host process.
    pub fn start_with(ws: &Workspace, extra: &str, limits: ProcessLimits) -> ProcessHost {
        let mut host = Self::spawn_with(ws, extra, limits);
        host.addr = host
            .wait_listening(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("modhost did not start:\n{}", host.log()));
        host
    }

    /// Starts the binary without waiting for it (for kill-at-any-moment).
    pub fn spawn(ws: &Workspace, extra: &str) -> ProcessHost {
        Self::spawn_with(ws, extra, ProcessLimits::default())
    }

    fn spawn_with(ws: &Workspace, extra: &str, limits: ProcessLimits) -> ProcessHost {
        use std::os::unix::process::CommandExt;
        let bin = modhost_bin();
        let config = ws.path().join("config.toml");
        std::fs::write(&config, ws.config_text(extra)).unwrap();
        let log = ws.path().join(format!("host-{}.log", unique()));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(ws.path())
            .env("NO_COLOR", "1")
            .env(
                "MODHOST_LOG",
                std::env::var("MODHOST_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if limits != ProcessLimits::default() {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let set = |resource, value: u64| {
                        let lim = libc::rlimit {
                            rlim_cur: value,
                            rlim_max: value,
                        };
                        if libc::setrlimit(resource, &lim) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    };
                    if let Some(v) = limits.address_space {
                        set(libc::RLIMIT_AS, v)?;
                    }
                    if let Some(v) = limits.open_files {
                        set(libc::RLIMIT_NOFILE, v)?;
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("start modhost");
        ProcessHost {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
        }
    }

    /// Waits for the "listening" log line; None if the process exited or
    /// `wait` passed.
    pub fn wait_listening(&mut self, wait: Duration) -> Option<std::net::SocketAddr> {
        let start = std::time::Instant::now();
        while start.elapsed() < wait {
            let log = self.log();
            if let Some(addr) = log
                .lines()
                .find(|l| l.contains("listening"))
                .and_then(listen_addr)
            {
                return Some(addr);
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The host's log so far (colours stripped).
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/ws/?token={token}", self.addr)
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait up to `wait` for the exit; None if still running
    /// (it is then killed).
    pub fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = std::time::Instant::now();
        while start.elapsed() < wait {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    /// `GET /api/modules`.
    pub async fn modules(&self) -> Vec<Value> {
        api_modules(&self.url("")).await
    }

    /// `POST /api/call`; returns (status, body).
    pub async fn call(&self, module: &str, command: &str, params: Value) -> (u16, Value) {
        admin_call(&self.url("/api/call"), module, command, params).await
    }

    /// `POST /trigger/`; returns the status.
    pub async fn trigger(&self, body: &Value) -> u16 {
        http()
            .post(self.url("/trigger/"))
            .bearer_auth(TRIGGER_TOKEN)
            .body(body.to_string())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// The admin `status` frame (counters), over a websocket.
    pub async fn status(&self) -> Value {
        let mut c = Client::connect(&self.ws_url("admin-token")).await;
        c.next().await;
        c.send_json(serde_json::json!({"type": "status"})).await;
        c.next().await
    }
}

/// The address in the host's "listening" line, as text (`addr=…`) or as
/// JSON (`[log] format = "json"`: `fields.addr`).
fn listen_addr(line: &str) -> Option<std::net::SocketAddr> {
    match serde_json::from_str::<Value>(line) {
        Ok(json) => json["fields"]["addr"].as_str()?.parse().ok(),
        Err(_) => line
            .split("addr=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok(),
    }
}

impl Drop for ProcessHost {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}
