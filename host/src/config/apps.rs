//! `[apps.<name>]`: the applications users may launch as jobs (the `jobs`
//! built-in module), from their raw tables into [`AppConfig`].
//!
//! An app is a program and how to run it for one user: an argv (never a
//! shell line), the templates its job directory, environment and config
//! file are made from, the ports it may get, how to tell it is ready, how
//! to stop it and whether to start it again. Like `[auth]` these tables are
//! structure rather than settings with one default each, so they are
//! checked by hand here; their keys are declared once, by [`RawApp`].
//! Every key applies live: a launch reads the app as it is then, and a
//! running job keeps the settings it was launched with.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::Deserialize;

use super::{
    codec::bounded,
    declare::keyed,
    error::{KeyPath, Problem},
};

keyed! {
    /// One `[apps.<name>]` table as written.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RawApp {
        pub(super) command: Option<String>,
        pub(super) args: Vec<String>,
        pub(super) working_dir: Option<String>,
        pub(super) env: Option<toml::Value>,
        pub(super) port_range: Vec<u64>,
        pub(super) protocol: Option<String>,
        pub(super) require_password: Option<bool>,
        pub(super) hash_algorithm: Option<String>,
        pub(super) config_file: Option<String>,
        pub(super) config_template: Option<String>,
        pub(super) module: Option<String>,
        pub(super) ready_path: Option<String>,
        pub(super) ready_timeout_ms: Option<u64>,
        pub(super) stop_signal: Option<String>,
        pub(super) stop_grace_ms: Option<u64>,
        pub(super) restart: Option<String>,
        pub(super) max_restarts: Option<u64>,
        pub(super) restart_backoff_ms: Option<u64>,
        pub(super) max_jobs_per_user: Option<u64>,
        pub(super) max_jobs: Option<u64>,
        pub(super) log_max_bytes: Option<u64>,
        pub(super) log_files: Option<u64>,
        pub(super) digest_realm: Option<String>,
    }
}

/// Ports a job may get unless `port_range` says otherwise.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (20000, 29999);

/// How a job's app is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppProtocol {
    /// Plain HTTP.
    Http,
    /// HTTPS with the job's own self-signed certificate.
    Https,
}

impl AppProtocol {
    /// The name in config.toml and in job objects.
    pub fn as_str(self) -> &'static str {
        match self {
            AppProtocol::Http => "http",
            AppProtocol::Https => "https",
        }
    }
}

/// How a job's password is hashed for the app to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// argon2id PHC string (`$argon2id$…`).
    Argon2id,
    /// Apache's MD5-crypt (`$apr1$…`), what htpasswd files hold.
    ApacheMd5,
    /// `sha512:<salt>:<hex>`, Jupyter notebook's `passwd()` format.
    Sha512,
    /// Apache's digest file line `<user>:<realm>:<md5 hex>` (htdigest),
    /// what the seed's conduit relay read.
    ApacheDigest,
}

impl HashAlgorithm {
    /// The name in config.toml and in job objects.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Argon2id => "argon2id",
            HashAlgorithm::ApacheMd5 => "apache_md5",
            HashAlgorithm::Sha512 => "sha512",
            HashAlgorithm::ApacheDigest => "apache_digest",
        }
    }
}

/// Whether a job that ends is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never: an exit is final.
    Never,
    /// After a non-zero exit or a failed readiness check, up to
    /// `max_tries` times, waiting `backoff` (doubled each time) first.
    OnFailure {
        /// Restarts before the job is left `failed`.
        max_tries: u32,
        /// Wait before the first restart.
        backoff: Duration,
    },
}

/// One `[apps.<name>]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// `command`: the program, run without a shell.
    pub command: String,
    /// `args`: its arguments, each one argv entry after template
    /// substitution (`{port}`, `{job_dir}`, `{cert}`, `{key}`,
    /// `{password_hash}`, `{config}`, `{job_id}`, `{user}`, `{host}`).
    pub args: Vec<String>,
    /// `working_dir`: template of the directory it runs in (default
    /// `{job_dir}`).
    pub working_dir: String,
    /// `env`: extra environment (templates); the rest is only `PATH`,
    /// `HOME` and `LANG` from the host's.
    pub env: BTreeMap<String, String>,
    /// `port_range = [first, last]`: ports a job may get.
    pub port_range: (u16, u16),
    /// `protocol`: `http` (default) or `https`.
    pub protocol: AppProtocol,
    /// `require_password`: a launch must give a password.
    pub require_password: bool,
    /// `hash_algorithm`: `argon2id` (default), `apache_md5`, `sha512` or
    /// `apache_digest`.
    pub hash_algorithm: HashAlgorithm,
    /// `digest_realm`: the realm of an `apache_digest` line (default
    /// `modhost`).
    pub digest_realm: String,
    /// `config_file`: the file name, in the job dir, of the app's config.
    pub config_file: Option<String>,
    /// `config_template`: that file's contents (templates), unless the
    /// app's module makes them.
    pub config_template: Option<String>,
    /// `module`: a module whose `gen_config` command makes the config
    /// file and extra args from the job object.
    pub module: Option<String>,
    /// `ready_path`: an HTTP path that answers once the app is ready
    /// (`protocol = "http"` only); without it, a TCP connect.
    pub ready_path: Option<String>,
    /// `ready_timeout_ms`: how long a job may take to become ready.
    pub ready_timeout: Duration,
    /// `stop_signal`: the signal `jobs.stop` sends first.
    pub stop_signal: i32,
    /// `stop_grace_ms`: how long after it before the group is killed.
    pub stop_grace: Duration,
    /// `restart`, `max_restarts`, `restart_backoff_ms`.
    pub restart: RestartPolicy,
    /// `max_jobs_per_user`: jobs of this app one user may have active.
    pub max_jobs_per_user: usize,
    /// `max_jobs`: jobs of this app all users may have active.
    pub max_jobs: usize,
    /// `log_max_bytes`: a job's log is rotated past this size.
    pub log_max_bytes: u64,
    /// `log_files`: rotated logs kept besides the current one.
    pub log_files: u32,
}

const SIGNALS: &[(&str, i32)] = &[
    ("SIGTERM", libc::SIGTERM),
    ("SIGINT", libc::SIGINT),
    ("SIGHUP", libc::SIGHUP),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGKILL", libc::SIGKILL),
];

/// An app name as used in `[apps.<name>]` and `jobs.launch {app}`.
fn is_app_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// One of `choices` (by name) at `path`.
fn choice<T: Copy>(
    path: &KeyPath,
    written: Option<String>,
    default: T,
    choices: &[(&str, T)],
) -> Result<T, Problem> {
    let Some(written) = written else {
        return Ok(default);
    };
    choices
        .iter()
        .find(|(name, _)| *name == written)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            Problem::invalid(
                path,
                format!("{path} = {written:?} is not one this host knows"),
                format!("use one of {}", names.join(", ")),
            )
        })
}

/// `[apps]`: every table, validated.
pub(super) fn validate_apps(
    raw: BTreeMap<String, RawApp>,
) -> Result<BTreeMap<String, Arc<AppConfig>>, Problem> {
    let table = KeyPath::default().key("apps");
    let mut apps = BTreeMap::new();
    for (name, app) in raw {
        let path = table.key(&name);
        if !is_app_name(&name) {
            return Err(Problem::invalid(
                &path,
                format!("[apps.{name:?}]: {name:?} is not an app name"),
                "app names are 1 to 64 characters of a-z, 0-9, '_' and '-'",
            ));
        }
        apps.insert(name, Arc::new(validate_app(app, &path)?));
    }
    Ok(apps)
}

fn validate_app(raw: RawApp, path: &KeyPath) -> Result<AppConfig, Problem> {
    let command = match raw.command {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(Problem::invalid(
                &path.key("command"),
                format!("{path} has no command"),
                "set command = \"/path/to/program\"; its arguments go in args = [...], one per entry (no shell)",
            ));
        }
    };
    let port_range = match raw.port_range.as_slice() {
        [] => DEFAULT_PORT_RANGE,
        &[first, last] if (1024..=65535).contains(&first) && first <= last && last <= 65535 => {
            (first as u16, last as u16)
        }
        _ => {
            return Err(Problem::invalid(
                &path.key("port_range"),
                format!("{path}.port_range must be two ports, first ≤ last, from 1024 to 65535"),
                "e.g. port_range = [20000, 20999]",
            ));
        }
    };
    let mut env = BTreeMap::new();
    match raw.env {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (key, value) in t {
                let toml::Value::String(value) = value else {
                    return Err(Problem::invalid(
                        &path.key("env").key(&key),
                        format!("{path}.env.{key} is not a string"),
                        "write every environment value as a string, e.g. env = { LOG_LEVEL = \"info\" }",
                    ));
                };
                env.insert(key, value);
            }
        }
        Some(_) => {
            return Err(Problem::invalid(
                &path.key("env"),
                format!("{path}.env is not a table"),
                "write env = { NAME = \"value\" }",
            ));
        }
    }
    let protocol = choice(
        &path.key("protocol"),
        raw.protocol,
        AppProtocol::Http,
        &[("http", AppProtocol::Http), ("https", AppProtocol::Https)],
    )?;
    let hash_algorithm = choice(
        &path.key("hash_algorithm"),
        raw.hash_algorithm,
        HashAlgorithm::Argon2id,
        &[
            ("argon2id", HashAlgorithm::Argon2id),
            ("apache_md5", HashAlgorithm::ApacheMd5),
            ("sha512", HashAlgorithm::Sha512),
            ("apache_digest", HashAlgorithm::ApacheDigest),
        ],
    )?;
    if let Some(file) = &raw.config_file
        && (file.is_empty() || file.contains('/') || file.starts_with('.'))
    {
        return Err(Problem::invalid(
            &path.key("config_file"),
            format!("{path}.config_file = {file:?} is not a plain file name"),
            "name a file in the job directory, e.g. config_file = \"app_config.py\"",
        ));
    }
    if raw.config_template.is_some() && raw.config_file.is_none() {
        return Err(Problem::invalid(
            &path.key("config_template"),
            format!("{path}.config_template is set but config_file is not"),
            "set config_file to the name the app reads its config from",
        ));
    }
    if let Some(ready) = &raw.ready_path {
        if !ready.starts_with('/') {
            return Err(Problem::invalid(
                &path.key("ready_path"),
                format!("{path}.ready_path = {ready:?} does not start with '/'"),
                "write the path of a URL on the app, e.g. ready_path = \"/login\"",
            ));
        }
        if protocol == AppProtocol::Https {
            return Err(Problem::invalid(
                &path.key("ready_path"),
                format!(
                    "{path}.ready_path is only checked over plain HTTP, and protocol = \"https\""
                ),
                "remove ready_path: an https app is ready when its port accepts a connection",
            ));
        }
    }
    let ms = |key: &str, value: Option<u64>, default: u64, max: u64, what: &str| {
        bounded(&path.key(key), value.unwrap_or(default), 1, max, what).map(Duration::from_millis)
    };
    let ready_timeout = ms(
        "ready_timeout_ms",
        raw.ready_timeout_ms,
        30_000,
        600_000,
        "how long a job may take to become ready, in milliseconds (default 30000)",
    )?;
    let stop_signal = choice(
        &path.key("stop_signal"),
        raw.stop_signal,
        libc::SIGTERM,
        SIGNALS,
    )?;
    let stop_grace = ms(
        "stop_grace_ms",
        raw.stop_grace_ms,
        5_000,
        600_000,
        "how long a stopped job has to exit before its process group is killed, in milliseconds (default 5000)",
    )?;
    let restart = match choice(
        &path.key("restart"),
        raw.restart,
        false,
        &[("never", false), ("on-failure", true)],
    )? {
        false => RestartPolicy::Never,
        true => RestartPolicy::OnFailure {
            max_tries: bounded(
                &path.key("max_restarts"),
                raw.max_restarts.unwrap_or(3),
                1,
                100,
                "restarts after failures before a job is left failed (default 3)",
            )? as u32,
            backoff: ms(
                "restart_backoff_ms",
                raw.restart_backoff_ms,
                1_000,
                600_000,
                "wait before the first restart, doubled each time, in milliseconds (default 1000)",
            )?,
        },
    };
    let count = |key: &str, value: Option<u64>, default: u64, max: u64, what: &str| {
        bounded(&path.key(key), value.unwrap_or(default), 1, max, what)
    };
    Ok(AppConfig {
        command,
        args: raw.args,
        working_dir: raw.working_dir.unwrap_or_else(|| "{job_dir}".to_owned()),
        env,
        port_range,
        protocol,
        require_password: raw.require_password.unwrap_or(false),
        hash_algorithm,
        digest_realm: match raw.digest_realm {
            Some(realm) if realm.is_empty() || realm.contains(':') || realm.contains('\n') => {
                return Err(Problem::invalid(
                    &path.key("digest_realm"),
                    format!("{path}.digest_realm = {realm:?} cannot be a digest file's realm"),
                    "write a realm without ':' or line breaks, e.g. digest_realm = \"conduit\"",
                ));
            }
            Some(realm) => realm,
            None => "modhost".to_owned(),
        },
        config_file: raw.config_file,
        config_template: raw.config_template,
        module: raw.module,
        ready_path: raw.ready_path,
        ready_timeout,
        stop_signal,
        stop_grace,
        restart,
        max_jobs_per_user: count(
            "max_jobs_per_user",
            raw.max_jobs_per_user,
            2,
            10_000,
            "jobs of this app one user may have starting or running (default 2)",
        )? as usize,
        max_jobs: count(
            "max_jobs",
            raw.max_jobs,
            20,
            10_000,
            "jobs of this app all users together may have starting or running (default 20)",
        )? as usize,
        log_max_bytes: count(
            "log_max_bytes",
            raw.log_max_bytes,
            1_048_576,
            1 << 34,
            "a job's log is rotated past this many bytes (default 1048576)",
        )?,
        log_files: count(
            "log_files",
            raw.log_files,
            3,
            100,
            "rotated log files kept besides the current one (default 3)",
        )? as u32,
    })
}
