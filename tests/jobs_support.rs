//! Shared by the `jobs_*` tests and others that launch a job: the test app
//! (`fixtures/jobs/app.py`) as an `[apps.<name>]` table, launching it for
//! alice, polling a job's status, and a reaper that kills every process a
//! test's jobs started, even when the test fails.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::{Value, json};

use crate::harness::{TestHost, admin_call};

/// The real Python executable (not a shim: a job gets a bare environment).
pub fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn app_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jobs/app.py")
}

/// `[apps.<name>]` running the test app over HTTPS with a sha512 password
/// hash, `modes` after its config path, `extra` keys appended.
pub fn app_table(name: &str, modes: &[&str], extra: &str) -> String {
    let mut args = vec![app_py().display().to_string(), "{config}".to_owned()];
    args.extend(modes.iter().map(|m| (*m).to_owned()));
    format!(
        r#"
[apps.{name}]
command = {command}
args = {args}
protocol = "https"
require_password = true
hash_algorithm = "sha512"
config_file = "app.json"
config_template = '{{"port": {{port}}, "cert": "{{cert}}", "key": "{{key}}", "hash_file": "{{password_hash_file}}", "https": true, "user": "{{user}}"}}'
{extra}
"#,
        command = json!(python()),
        args = json!(args),
    )
}

/// Like [`app_table`], serving plain HTTP (so `ready_path` applies).
pub fn http_app_table(name: &str, modes: &[&str], extra: &str) -> String {
    app_table(name, modes, extra)
        .replace("protocol = \"https\"", "protocol = \"http\"")
        .replace("\"https\": true", "\"https\": false")
}

/// The tokens the jobs tests add: carol may subscribe to her jobs' room.
pub const CAROL: &str = r#"
[[auth.tokens]]
token = "carol-token"
user = "carol"
roles = ["user"]
allowed_rooms = [{ target = "jobs", user = "carol" }]
"#;

/// `jobs.list` as the operator on `api` (a host's `/api/call`): every job.
pub async fn all_jobs(api: &str) -> Vec<Value> {
    let (status, body) = admin_call(api, "jobs", "list", json!({})).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `jobs.launch` of `app` for alice (password `pw`), as the operator:
/// (status, body).
pub async fn try_launch(host: &TestHost, app: &str) -> (u16, Value) {
    let params = json!({"app": app, "password": "pw", "user": "alice"});
    host.call("jobs", "launch", params).await
}

/// [`try_launch`], which must succeed: the job's id.
pub async fn launch(host: &TestHost, app: &str) -> String {
    let (status, body) = try_launch(host, app).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["job_id"].as_str().unwrap().to_owned()
}

/// Polls until job `id` satisfies `done`; returns it.
pub async fn wait_job(api: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = all_jobs(api).await;
        let job = jobs
            .iter()
            .find(|j| j["job_id"] == id)
            .cloned()
            .unwrap_or(Value::Null);
        if done(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} still not {what} after 60 s: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until job `id` has `status`.
pub async fn wait_status(api: &str, id: &str, status: &str) -> Value {
    wait_job(api, id, status, |j| j["status"] == status).await
}

/// An HTTPS GET with curl, trusting only `cert`: (status code, body).
pub fn https_get(port: u64, cert: &str, password: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert", cert, "-H"])
        .arg(format!("X-Password: {password}"))
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://localhost:{port}/"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Kills, when dropped, every process whose working directory is under
/// `root` (a test's workspace: jobs run in their job directories), with
/// its process group.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in processes_under(&self.0) {
            // SAFETY: only sends signals.
            unsafe {
                let group = libc::getpgid(pid as i32);
                // Never the test's own group: a job that did not get a
                // group of its own must not take the test runner with it.
                if group > 1 && group != libc::getpgid(0) {
                    libc::killpg(group, libc::SIGKILL);
                }
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// Pids of processes whose working directory is under `root`.
pub fn processes_under(root: &Path) -> Vec<u32> {
    let Ok(root) = root.canonicalize() else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&root))
        })
        .collect()
}
