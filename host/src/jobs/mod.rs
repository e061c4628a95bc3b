//! The job launcher: users start applications (`[apps.<name>]`) as jobs,
//! each on a port of its own with its own directory, certificate and
//! password hash, supervised by the host and found again after it
//! restarts. It is the seed's uiuc2015 launcher done as a host service:
//! ports checked by binding, argv without a shell, jobs stopped as a
//! process group, a registry in SQLite.
//!
//! The service is the built-in module `jobs` (`endpoint`), so
//! `jobs.launch` is one broker call from a websocket, `POST /api/call` or
//! another module, with the caller stamped by the host. A job belongs to
//! the user who launched it; admins see and stop every job. Each status
//! change is written to the registry, then published to the owner's room
//! `{"target": "jobs", "user": <owner>}` as `{"event": "status", "job"}`.
//!
//! Jobs outlive the host: stopping or killing it leaves them running, and
//! the next start re-adopts every job whose pid still names the process it
//! started (same start time in `/proc/<pid>/stat`); the others are marked
//! `lost`. Nothing is started twice, and a running job's port stays held.
//!
//! # Layout
//! - `job`: [`Job`], its [`Status`] and the job object callers get
//! - `error`: [`JobError`], and the error code each gives
//! - `ports`: port reservation (bind-checked, never one another job holds)
//! - `workspace`: the job directory, certificate, templates
//! - `hash`: password hashes (argon2id, Apache MD5, Jupyter sha512)
//! - `process`: spawning in a process group, start times, readiness
//! - `logs`: the capped, rotated job log and its tail
//! - `supervise`: a job's task: readiness, exit, restart policy, stop
//! - `store`: the registry in `state_dir/modhost.db`
//! - `launch`: `jobs.launch` and `jobs.restart`: from params to a process
//! - `endpoint`: the built-in `jobs` module: manifest, commands, ownership

mod endpoint;
mod error;
mod hash;
mod job;
mod launch;
mod logs;
mod ports;
mod process;
mod store;
mod supervise;
mod workspace;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use modhost_plugin_api::Manifest;
use serde_json::json;
use tokio::sync::{Notify, watch};

pub use error::JobError;
pub use hash::MAX_JOB_PASSWORD_BYTES;
pub use job::{Job, Status};
pub use logs::LOG_FILE;
pub use process::{same_process, start_ticks};
pub use workspace::{CERT_FILE, HASH_FILE, KEY_FILE};

use crate::{
    config::{AppConfig, RestartPolicy},
    rooms::Room,
    state::AppState,
    util::sync::lock,
};
use ports::Ports;
use process::Plan;
use store::Registry;
use supervise::Proc;

/// The built-in module's name.
pub const MODULE: &str = "jobs";

/// The folder of job directories in `[modules] state_dir`.
pub const JOBS_DIR: &str = "jobs";

/// What supervising a job needs from its app, kept from the launch (a
/// reload changes new launches only).
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    ready_path: Option<String>,
    ready_timeout: Duration,
    stop_signal: i32,
    stop_grace: Duration,
    restart: RestartPolicy,
    log_max_bytes: u64,
    log_files: u32,
}

impl Rules {
    fn of(app: &AppConfig) -> Self {
        Self {
            ready_path: app.ready_path.clone(),
            ready_timeout: app.ready_timeout,
            stop_signal: app.stop_signal,
            stop_grace: app.stop_grace,
            restart: app.restart,
            log_max_bytes: app.log_max_bytes,
            log_files: app.log_files,
        }
    }

    /// For a re-adopted job whose app is no longer configured: stop it
    /// gently, never restart it.
    fn fallback() -> Self {
        Self {
            ready_path: None,
            ready_timeout: Duration::from_secs(30),
            stop_signal: libc::SIGTERM,
            stop_grace: Duration::from_secs(5),
            restart: RestartPolicy::Never,
            log_max_bytes: 1 << 20,
            log_files: 3,
        }
    }
}

/// One job the host knows, with what supervising it needs.
pub(crate) struct Slot {
    job: Mutex<Job>,
    plan: Mutex<Plan>,
    rules: Rules,
    /// Wakes the supervisor for `jobs.stop` (see [`Slot::stop_requested`]).
    stop: Notify,
    /// Set by `jobs.stop`, cleared when the job is started again.
    stopping: AtomicBool,
    /// Whether a supervisor task runs for it, for `jobs.stop` to wait on.
    supervised: watch::Sender<bool>,
}

impl Slot {
    fn new(job: Job, plan: Plan, rules: Rules) -> Arc<Self> {
        Arc::new(Self {
            job: Mutex::new(job),
            plan: Mutex::new(plan),
            rules,
            stop: Notify::new(),
            stopping: AtomicBool::new(false),
            supervised: watch::Sender::new(false),
        })
    }

    fn job(&self) -> MutexGuard<'_, Job> {
        lock(&self.job)
    }

    /// Resolves once `jobs.stop` asks for this job to stop. A wake-up left
    /// over from a stop that came as the job ended is ignored once the job
    /// is started again.
    async fn stop_requested(&self) {
        loop {
            self.stop.notified().await;
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
        }
    }
}

/// The job launcher.
pub struct Jobs {
    me: Weak<Jobs>,
    state: OnceLock<Weak<AppState>>,
    runtime: tokio::runtime::Handle,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    ports: Ports,
    registry: Mutex<Option<Arc<Registry>>>,
    state_dir: PathBuf,
    host: String,
    manifest: Manifest,
}

impl Jobs {
    /// A launcher keeping its jobs under `state_dir`, running its tasks on
    /// the current tokio runtime. It serves once [`Jobs::attach`]ed.
    pub fn new(state_dir: &Path) -> Arc<Jobs> {
        Arc::new_cyclic(|me| Jobs {
            me: me.clone(),
            state: OnceLock::new(),
            runtime: tokio::runtime::Handle::current(),
            slots: Mutex::default(),
            ports: Ports::default(),
            registry: Mutex::default(),
            state_dir: state_dir.to_owned(),
            host: workspace::host_name(),
            manifest: endpoint::manifest(),
        })
    }

    /// Connects the launcher to the host's state (config, fan-out, broker)
    /// and re-adopts the jobs a previous run left. Without a store there is
    /// nothing to re-adopt, and it is made at the first launch, not here:
    /// a host that never launches a job leaves no file behind.
    pub fn attach(&self, state: &Arc<AppState>) {
        let _ = self.state.set(Arc::downgrade(state));
        if !self.state_dir.join(crate::accounts::DB_FILE).exists() {
            return;
        }
        match self.registry() {
            Ok(registry) => self.adopt(&registry),
            Err(e) => {
                tracing::error!("jobs: {e}; jobs left running by a previous run are not re-adopted")
            }
        }
    }

    fn state(&self) -> Result<Arc<AppState>, JobError> {
        self.state
            .get()
            .and_then(Weak::upgrade)
            .ok_or(JobError::ShuttingDown)
    }

    /// The registry, opened on first use.
    fn registry(&self) -> Result<Arc<Registry>, JobError> {
        let mut slot = lock(&self.registry);
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let opened = Arc::new(Registry::open(&self.state_dir)?);
        *slot = Some(opened.clone());
        Ok(opened)
    }

    /// Every job in the registry: active ones re-adopted if their process
    /// is still the one started, else marked lost; the rest listed.
    fn adopt(&self, registry: &Registry) {
        let loaded = match registry.load() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("jobs: cannot read the registry: {e}");
                return;
            }
        };
        let config = self.state().ok().map(|s| s.config.load_full());
        let (mut adopted, mut lost) = (0, 0);
        for (mut job, plan) in loaded {
            let rules = config
                .as_ref()
                .and_then(|c| c.apps.get(&job.app))
                .map_or_else(Rules::fallback, |app| Rules::of(app));
            let alive = match (job.status.is_active(), job.pid, job.start_ticks) {
                (true, Some(pid), Some(ticks)) => same_process(pid, ticks).then_some((pid, ticks)),
                _ => None,
            };
            if job.status.is_active() && alive.is_none() {
                job.status = Status::Lost;
                job.message = Some(
                    "its process was gone (or replaced) when the host started again".to_owned(),
                );
                lost += 1;
                if let Err(e) = registry.save(&job, &plan) {
                    tracing::error!(job = %job.job_id, "jobs: cannot mark the job lost: {e}");
                }
            }
            let slot = Slot::new(job, plan, rules);
            let id = slot.job().job_id.clone();
            lock(&self.slots).insert(id, slot.clone());
            if let Some((pid, ticks)) = alive {
                adopted += 1;
                self.ports.hold(slot.job().port);
                self.supervise(slot, Proc::Adopted { pid, ticks });
            }
        }
        if adopted + lost > 0 {
            tracing::info!(
                adopted,
                lost,
                "jobs: re-adopted the jobs still running, marked the rest lost"
            );
        }
    }

    /// Changes `slot`'s job, writes it to the registry, then publishes it
    /// to its owner's room.
    fn update(&self, slot: &Slot, change: impl FnOnce(&mut Job)) {
        let job = {
            let mut job = slot.job();
            change(&mut job);
            job.clone()
        };
        match self.registry() {
            Ok(registry) => {
                if let Err(e) = registry.save(&job, &lock(&slot.plan)) {
                    tracing::error!(job = %job.job_id, "jobs: cannot write the job's status: {e}");
                }
            }
            Err(e) => tracing::error!(job = %job.job_id, "jobs: {e}"),
        }
        self.publish(&job);
    }

    /// Starts `slot`'s supervisor task.
    fn supervise(&self, slot: Arc<Slot>, proc: Proc) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        slot.supervised.send_replace(true);
        self.runtime.spawn(supervise::run(me, slot, proc));
    }

    fn publish(&self, job: &Job) {
        let Ok(state) = self.state() else {
            return;
        };
        let room = Room::parse(&json!({"target": MODULE, "user": job.owner}));
        let data = serde_json::value::to_raw_value(&json!({"event": "status", "job": job.view()}));
        if let (Ok(room), Ok(data)) = (room, data) {
            state.publish(&[room], &data);
        }
    }

    /// The supervisor is done with `slot`: its port is free again.
    fn finished(&self, slot: &Slot) {
        self.ports.release(slot.job().port);
        slot.supervised.send_replace(false);
    }

    /// How many jobs the host knows in each status (`/metrics`).
    pub fn count_by_status(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut out = std::collections::BTreeMap::new();
        for slot in lock(&self.slots).values() {
            *out.entry(slot.job().status.as_str()).or_default() += 1;
        }
        out
    }

    /// The jobs `filter` keeps, oldest first.
    fn matching(&self, filter: impl Fn(&Job) -> bool) -> Vec<Arc<Slot>> {
        let mut out: Vec<Arc<Slot>> = lock(&self.slots)
            .values()
            .filter(|s| filter(&s.job()))
            .cloned()
            .collect();
        out.sort_by_key(|s| {
            let job = s.job();
            (job.created, job.job_id.clone())
        });
        out
    }

    /// The job `job_id`, if `user` may see it (its owner, or an admin).
    fn visible(&self, job_id: &str, user: &str, admin: bool) -> Result<Arc<Slot>, JobError> {
        lock(&self.slots)
            .get(job_id)
            .filter(|s| admin || s.job().owner == user)
            .cloned()
            .ok_or_else(|| JobError::NoJob(job_id.to_owned()))
    }

    /// Asks `slot`'s supervisor to stop it and waits for its final status
    /// (the grace period, then the kill, then a margin).
    async fn stop_and_wait(&self, slot: &Slot) {
        let mut supervised = slot.supervised.subscribe();
        if !*supervised.borrow() {
            return;
        }
        slot.stopping.store(true, Ordering::Release);
        slot.stop.notify_one();
        let wait = slot.rules.stop_grace + Duration::from_secs(5);
        let _ = tokio::time::timeout(wait, supervised.wait_for(|on| !on)).await;
    }
}
