//! A job as the registry keeps it and as callers see it: the seed's job
//! object (`job_id`, `app`, `port`, `config`, `pid`, `owner`, `protocol`,
//! `host`, `creation_timestamp`, `status`, `hash_algorithm`) plus what the
//! seed never tracked (exit code, restarts, the certificate's path).
//! Neither the password nor its hash is ever part of it.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use serde_json::{Value, json};

/// Where a job is in its life: `starting → running → exited | failed |
/// stopped`; `lost` when the host restarted and its process was gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Spawned, not ready yet (also again after a restart).
    Starting,
    /// Its readiness check passed.
    Running,
    /// It ended with exit code 0.
    Exited,
    /// It ended otherwise, or never became ready.
    Failed,
    /// `jobs.stop` ended it.
    Stopped,
    /// Found gone (or replaced) when the host started again.
    Lost,
}

impl Status {
    /// The name in job objects and the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
            Status::Lost => "lost",
        }
    }

    /// The status named `name` (from the registry).
    pub fn parse(name: &str) -> Option<Status> {
        [
            Status::Starting,
            Status::Running,
            Status::Exited,
            Status::Failed,
            Status::Stopped,
            Status::Lost,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Whether its process may be alive (it holds its port and counts
    /// towards the limits).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Starting | Status::Running)
    }
}

/// One job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `job_<12 hex>`: unique, unlike the seed's `job_<port>`.
    pub job_id: String,
    /// Its `[apps.<name>]`.
    pub app: String,
    /// The user it runs for.
    pub owner: String,
    /// Its reserved port.
    pub port: u16,
    /// `http` or `https`.
    pub protocol: String,
    /// The name the app is reached at.
    pub host: String,
    /// Its directory (0700).
    pub job_dir: PathBuf,
    /// Its config file, if the app has one.
    pub config: Option<PathBuf>,
    /// How its password was hashed.
    pub hash_algorithm: String,
    /// When it was launched.
    pub created: SystemTime,
    /// Where it is in its life.
    pub status: Status,
    /// The process (and process group) id while it may run.
    pub pid: Option<u32>,
    /// The process's start time (`/proc/<pid>/stat` field 22), to tell it
    /// from a later process that got the same pid.
    pub start_ticks: Option<u64>,
    /// The exit code once it ended by itself.
    pub exit_code: Option<i32>,
    /// Times it was started again (restart policy or `jobs.restart`).
    pub restarts: u32,
    /// Why it failed or was lost.
    pub message: Option<String>,
}

impl Job {
    /// The job object callers get (never the password or its hash).
    pub fn view(&self) -> Value {
        json!({
            "job_id": self.job_id,
            "app": self.app,
            "port": self.port,
            "config": self.config.as_ref().map(|p| p.display().to_string()),
            "pid": self.pid,
            "owner": self.owner,
            "protocol": self.protocol,
            "host": self.host,
            "creation_timestamp": humantime::format_rfc3339_seconds(self.created).to_string(),
            "status": self.status.as_str(),
            "hash_algorithm": self.hash_algorithm,
            "exit_code": self.exit_code,
            "restarts": self.restarts,
            "message": self.message,
            "job_dir": self.job_dir.display().to_string(),
            "cert": self.job_dir.join(super::workspace::CERT_FILE).display().to_string(),
            "url": format!("{}://{}:{}/", self.protocol, self.host, self.port),
        })
    }

    /// Unix seconds of `created`, for the registry.
    pub fn created_secs(&self) -> i64 {
        self.created
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    /// `created` from the registry's Unix seconds.
    pub fn created_from(secs: i64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
    }
}
