//! `jobs.launch` and `jobs.restart`: from an app and a caller to a
//! supervised process.
//!
//! A launch checks the limits and reserves a port under the job table's
//! lock (so two launches at once cannot both pass a limit or get one
//! port), then, outside it, makes the job directory, certificate, password
//! hash and config (the app's module's `gen_config` if it names one, else
//! its `config_template`), substitutes the templates into the argv and
//! spawns it. A launch that fails after the reservation leaves the job
//! `failed` with the reason, and its port free.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use modhost_plugin_api::Caller;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{
    JOBS_DIR, JobError, Jobs, MODULE, Rules, Slot, hash,
    job::{Job, Status},
    process::{self, Plan},
    supervise::Proc,
    workspace::{self, HASH_FILE, Vars},
};
use crate::{
    broker::CallRequest,
    config::AppConfig,
    modules::{CallContext, CallFailure, CallSink, UserRights},
};

/// Who a command is for, from the host's stamp.
#[derive(Debug, Clone)]
pub(super) struct Who {
    /// The user the job is for.
    pub(super) user: String,
    /// The caller's roles include admin.
    pub(super) admin: bool,
    /// The stamp, passed on to an app's module.
    pub(super) caller: Caller,
    /// The user's rights, passed on with it.
    pub(super) rights: Option<UserRights>,
}

/// What `jobs.launch` was asked.
pub(super) struct LaunchRequest {
    pub(super) app: String,
    pub(super) password: Option<String>,
}

impl Jobs {
    /// `jobs.launch`: reserves, prepares and spawns; the job object.
    pub(super) async fn launch(&self, who: &Who, req: LaunchRequest) -> Result<Value, JobError> {
        let state = self.state()?;
        let app = state
            .config
            .load()
            .apps
            .get(&req.app)
            .cloned()
            .ok_or_else(|| JobError::UnknownApp(req.app.clone()))?;
        if app.require_password && req.password.is_none() {
            return Err(JobError::PasswordRequired(req.app));
        }
        // A launch the registry cannot record would run untracked.
        self.registry()?;
        let slot = self.reserve(&req.app, &app, &who.user)?;
        match self.prepare(&slot, &app, who, req.password).await {
            Ok(plan) => {
                *super::lock(&slot.plan) = plan;
                match self.respawn(&slot) {
                    Ok(proc) => {
                        self.supervise(slot.clone(), proc);
                        Ok(slot.job().view())
                    }
                    Err(e) => Err(self.failed_launch(&slot, e)),
                }
            }
            Err(e) => Err(self.failed_launch(&slot, e)),
        }
    }

    /// Checks the limits and holds a port and a job id, in one step under
    /// the table's lock; the job is `starting` from here.
    fn reserve(
        &self,
        name: &str,
        app: &Arc<AppConfig>,
        owner: &str,
    ) -> Result<Arc<Slot>, JobError> {
        let mut slots = super::lock(&self.slots);
        // A job waiting out its restart backoff is `failed` but will run
        // again: it counts as long as its supervisor runs.
        let active = |s: &&Arc<Slot>| {
            let job = s.job();
            job.app == name && (job.status.is_active() || *s.supervised.borrow())
        };
        let all = slots.values().filter(active).count();
        let mine = slots
            .values()
            .filter(active)
            .filter(|s| s.job().owner == owner)
            .count();
        if mine >= app.max_jobs_per_user {
            return Err(JobError::PerUserLimit {
                app: name.to_owned(),
                limit: app.max_jobs_per_user,
            });
        }
        if all >= app.max_jobs {
            return Err(JobError::GlobalLimit {
                app: name.to_owned(),
                limit: app.max_jobs,
            });
        }
        let (first, last) = app.port_range;
        let port = self.ports.reserve(first, last).ok_or(JobError::NoPort {
            app: name.to_owned(),
            first,
            last,
        })?;
        let mut raw = [0u8; 6];
        getrandom::fill(&mut raw).map_err(|e| JobError::Prepare(format!("no randomness: {e}")))?;
        let job_id = format!("job_{}", hex::encode(raw));
        let job = Job {
            job_id: job_id.clone(),
            app: name.to_owned(),
            owner: owner.to_owned(),
            port,
            protocol: app.protocol.as_str().to_owned(),
            host: self.host.clone(),
            job_dir: self.state_dir.join(JOBS_DIR).join(&job_id),
            config: app
                .config_file
                .as_ref()
                .map(|f| self.state_dir.join(JOBS_DIR).join(&job_id).join(f)),
            hash_algorithm: app.hash_algorithm.as_str().to_owned(),
            created: SystemTime::now(),
            status: Status::Starting,
            pid: None,
            start_ticks: None,
            exit_code: None,
            restarts: 0,
            message: None,
        };
        let slot = Slot::new(job, empty_plan(), Rules::of(app));
        slots.insert(job_id, slot.clone());
        Ok(slot)
    }

    /// The job directory, certificate, hash and config; the argv.
    async fn prepare(
        &self,
        slot: &Slot,
        app: &AppConfig,
        who: &Who,
        password: Option<String>,
    ) -> Result<Plan, JobError> {
        let job = slot.job().clone();
        let dir = job.job_dir.clone();
        let prepare = |what: &str, e: std::io::Error| JobError::Prepare(format!("{what}: {e}"));
        workspace::make_dir(&dir).map_err(|e| prepare(&dir.display().to_string(), e))?;
        let (cert, key) = workspace::make_cert(&dir, &job.host).map_err(JobError::Prepare)?;
        let password_hash = match password {
            Some(password) => {
                let algorithm = app.hash_algorithm;
                let (user, realm) = (job.owner.clone(), app.digest_realm.clone());
                // argon2id takes tens of milliseconds and 19 MiB.
                let hashed = tokio::task::spawn_blocking(move || {
                    hash::hash(algorithm, &password, &user, &realm)
                })
                .await
                .map_err(|e| JobError::Prepare(format!("hashing: {e}")))?
                .map_err(JobError::Prepare)?;
                workspace::write_file(&dir.join(HASH_FILE), hashed.as_bytes(), 0o600)
                    .map_err(|e| prepare(HASH_FILE, e))?;
                hashed
            }
            None => String::new(),
        };
        let show = |p: &std::path::Path| p.display().to_string();
        let vars = Vars(HashMap::from([
            ("port", job.port.to_string()),
            ("job_dir", show(&dir)),
            ("cert", show(&cert)),
            ("key", show(&key)),
            ("password_hash", password_hash),
            ("password_hash_file", show(&dir.join(HASH_FILE))),
            (
                "config",
                job.config.as_deref().map(show).unwrap_or_default(),
            ),
            ("job_id", job.job_id.clone()),
            ("user", job.owner.clone()),
            ("host", job.host.clone()),
        ]));
        let mut args: Vec<String> = app.args.iter().map(|a| vars.fill(a)).collect();
        let contents = match &app.module {
            Some(module) => {
                let made = self
                    .gen_config(module, &job, who)
                    .await
                    .map_err(|message| JobError::Module {
                        app: job.app.clone(),
                        module: module.clone(),
                        message,
                    })?;
                args.extend(made.args);
                if let Some((cert_pem, key_pem)) = made.pem {
                    workspace::write_file(&cert, cert_pem.as_bytes(), 0o644)
                        .map_err(|e| prepare(&cert.display().to_string(), e))?;
                    workspace::write_file(&key, key_pem.as_bytes(), 0o600)
                        .map_err(|e| prepare(&key.display().to_string(), e))?;
                }
                made.config
            }
            None => app.config_template.as_ref().map(|t| vars.fill(t)),
        };
        if let (Some(path), Some(contents)) = (&job.config, contents) {
            workspace::write_file(path, contents.as_bytes(), 0o600)
                .map_err(|e| prepare(&path.display().to_string(), e))?;
        }
        let cwd = std::path::PathBuf::from(vars.fill(&app.working_dir));
        if cwd.starts_with(&dir) {
            workspace::make_dir(&cwd).map_err(|e| prepare(&cwd.display().to_string(), e))?;
        }
        Ok(Plan {
            command: vars.fill(&app.command),
            args,
            cwd,
            env: app
                .env
                .iter()
                .map(|(k, v)| (k.clone(), vars.fill(v)))
                .collect(),
        })
    }

    /// Spawns `slot`'s plan again (launch, restart policy, `jobs.restart`):
    /// `starting` with the new pid.
    pub(super) fn respawn(&self, slot: &Slot) -> Result<Proc, JobError> {
        let plan = super::lock(&slot.plan).clone();
        let (app, job_dir, first) = {
            let job = slot.job();
            (job.app.clone(), job.job_dir.clone(), job.pid.is_none())
        };
        let (child, ticks) = process::spawn(&plan, &job_dir).map_err(|source| JobError::Spawn {
            app,
            command: plan.command.clone(),
            source,
        })?;
        self.update(slot, |job| {
            if !first {
                job.restarts += 1;
            }
            job.status = Status::Starting;
            job.pid = child.id();
            job.start_ticks = ticks;
            job.exit_code = None;
            job.message = None;
        });
        Ok(Proc::Own(child))
    }

    /// A launch that failed after the reservation: the job is `failed`
    /// with the reason, its port free.
    fn failed_launch(&self, slot: &Slot, e: JobError) -> JobError {
        self.update(slot, |job| {
            job.status = Status::Failed;
            job.message = Some(e.to_string());
        });
        self.finished(slot);
        e
    }

    /// `jobs.restart`: stops the job if it runs, then starts it again on
    /// the same port (if that is still free) with the same argv.
    pub(super) async fn restart(&self, slot: Arc<Slot>) -> Result<Value, JobError> {
        self.stop_and_wait(&slot).await;
        let (port, app) = {
            let job = slot.job();
            (job.port, job.app.clone())
        };
        // Started again on purpose: the stop asked above is over.
        slot.stopping
            .store(false, std::sync::atomic::Ordering::Release);
        if self.ports.reserve(port, port).is_none() {
            return Err(JobError::NoPort {
                app,
                first: port,
                last: port,
            });
        }
        match self.respawn(&slot) {
            Ok(proc) => {
                self.supervise(slot.clone(), proc);
                Ok(slot.job().view())
            }
            Err(e) => Err(self.failed_launch(&slot, e)),
        }
    }

    /// Calls `module.gen_config {job}` through the broker for the caller:
    /// `{"config"?: text, "args"?: [text], "cert"?: PEM, "key"?: PEM}`
    /// (the seed's `gen_config`, `get_launch_cmd` and `gen_cert` in one
    /// call; the module never sees the password or its hash).
    async fn gen_config(&self, module: &str, job: &Job, who: &Who) -> Result<Generated, String> {
        let state = self.state().map_err(|e| e.to_string())?;
        let params = json!({"job": job.view()}).to_string();
        let context = CallContext {
            caller: who.caller.clone(),
            user: who.rights.clone(),
            admin_command: false,
        };
        let (tx, rx) = oneshot::channel();
        let req = CallRequest::by_module(MODULE, Some(&context), module, "gen_config", &params);
        state.broker.call(req, |_| Box::new(Reply(Some(tx))));
        let answer = rx
            .await
            .map_err(|_| "the call was dropped unanswered".to_owned())??;
        let value: Value =
            serde_json::from_str(&answer).map_err(|e| format!("its answer is not JSON: {e}"))?;
        let text = |key: &str| match value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("its answer's {key} is not a string")),
        };
        let config = text("config")?;
        let pem = match (text("cert")?, text("key")?) {
            (None, None) => None,
            (Some(cert), Some(key))
                if cert.contains("-----BEGIN") && key.contains("-----BEGIN") =>
            {
                Some((cert, key))
            }
            _ => return Err("its answer's cert and key must come together, both PEM".to_owned()),
        };
        let args = match value.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("its answer's args are not all strings")?,
            Some(_) => return Err("its answer's args is not a list".to_owned()),
        };
        Ok(Generated { config, args, pem })
    }
}

/// What an app's module made for a job.
struct Generated {
    config: Option<String>,
    args: Vec<String>,
    /// A certificate and key of the module's, in place of the generated.
    pem: Option<(String, String)>,
}

/// A sink that hands the module's answer to the launch waiting for it.
struct Reply(Option<oneshot::Sender<Result<String, String>>>);

impl CallSink for Reply {
    fn item(&mut self, _result: &str) {}
    fn finish(mut self: Box<Self>, outcome: Result<&str, CallFailure>) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(outcome.map(str::to_owned).map_err(|f| f.message));
        }
    }
}

fn empty_plan() -> Plan {
    Plan {
        command: String::new(),
        args: Vec::new(),
        cwd: std::path::PathBuf::new(),
        env: Default::default(),
    }
}
