//! The built-in `jobs` module: its manifest, and its commands as a broker
//! endpoint, so they are called like any module's (websocket, `POST
//! /api/call`, another module) with the caller stamped by the host.
//!
//! Ownership is checked here, from the stamp: a user launches for
//! themselves, lists their own jobs, and stops, restarts or reads the logs
//! of their own; a job of someone else's answers exactly like a job that
//! does not exist. Callers whose roles include admin (the operator on
//! `/api/call` among them) see every job and may launch for a user
//! (`params.user`).
//!
//! A command runs as a task on the host's runtime (`dispatch` only starts
//! it) and always answers: launch waits for the spawn, not for readiness
//! (the `running` status is published), and stop waits at most the app's
//! grace period and a margin.

use std::sync::Arc;

use modhost_plugin_api::{CommandSpec, ErrorCode, Manifest};
use serde_json::{Map, Value, json};

use super::{
    JobError, Jobs, MAX_JOB_PASSWORD_BYTES, MODULE,
    launch::{LaunchRequest, Who},
    logs,
};
use crate::{
    auth::ADMIN_ROLE,
    broker::{EndpointSource, ModuleEndpoint, StampedCall},
    modules::{Admission, CallFailure, CallSink},
};

/// Lines `jobs.logs` returns unless `tail` says otherwise.
const DEFAULT_TAIL: usize = 100;

/// The commands, as other modules' manifests declare theirs.
pub(super) fn manifest() -> Manifest {
    Manifest::new(MODULE, env!("CARGO_PKG_VERSION"))
        .description("job launcher: start, supervise and reach applications for users")
        .command(
            CommandSpec::new("launch")
                .param("app")
                .description("{app, password?, user? (admins)}: start a job of an [apps.<name>]"),
        )
        .command(CommandSpec::new("list").description("your jobs (admins: all, or {user})"))
        .command(
            CommandSpec::new("stop").param("job_id").description(
                "stop signal to the job's process group, then SIGKILL after the grace",
            ),
        )
        .command(
            CommandSpec::new("restart")
                .param("job_id")
                .description("stop the job if it runs, then start it again"),
        )
        .command(
            CommandSpec::new("logs")
                .param("job_id")
                .description("{job_id, tail?}: the last lines of the job's log"),
        )
        .command(CommandSpec::new("apps").description("the apps this host launches"))
}

impl EndpointSource for Jobs {
    fn resolve(&self, module: &str) -> Option<Arc<dyn ModuleEndpoint>> {
        if module != MODULE {
            return None;
        }
        self.me.upgrade().map(|j| j as Arc<dyn ModuleEndpoint>)
    }
}

impl ModuleEndpoint for Jobs {
    fn name(&self) -> &str {
        MODULE
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn dispatch(&self, call: StampedCall<'_>, sink: Box<dyn CallSink>) -> Admission {
        let Some(me) = self.me.upgrade() else {
            return Admission::Rejected(
                sink,
                CallFailure::new(ErrorCode::ModuleUnavailable, "the host is shutting down"),
            );
        };
        let params = match serde_json::from_str::<Map<String, Value>>(call.params) {
            Ok(p) => p,
            Err(e) => {
                return Admission::Rejected(
                    sink,
                    CallFailure::new(ErrorCode::MissingParam, format!("params: {e}")),
                );
            }
        };
        let who = Who {
            user: call.caller.user.to_string(),
            admin: call.caller.roles.iter().any(|r| r.as_str() == ADMIN_ROLE),
            caller: call.caller,
            rights: call.user,
        };
        let command = call.command.to_owned();
        let timeout = self.call_timeout();
        self.runtime.spawn(async move {
            // The command runs to its end in a task of its own: a launch
            // cut off half-way would leave a job `starting` with nothing to
            // supervise it. Only the answer is bounded, by the call timeout.
            let running = tokio::spawn(async move { me.command(&command, who, params).await });
            let outcome = match tokio::time::timeout(timeout, running).await {
                Ok(Ok(outcome)) => outcome.map_err(CallFailure::from),
                Ok(Err(panicked)) => Err(CallFailure::new(
                    ErrorCode::ModulePanicked,
                    format!("the jobs command failed: {panicked}"),
                )),
                Err(_) => Err(CallFailure::new(
                    ErrorCode::ModuleTimeout,
                    format!(
                        "no answer within {} ms ([limits] call_timeout_ms); it goes on, and the job's status is published to its owner's room",
                        timeout.as_millis()
                    ),
                )),
            };
            match outcome {
                Ok(reply) => sink.finish(Ok(&reply.to_string())),
                Err(failure) => sink.finish(Err(failure)),
            }
        });
        Admission::Accepted
    }
}

fn text(params: &Map<String, Value>, key: &str) -> Result<Option<String>, JobError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JobError::Params(format!("params.{key} must be a string"))),
    }
}

fn required(params: &Map<String, Value>, key: &str) -> Result<String, JobError> {
    text(params, key)?.ok_or_else(|| JobError::Params(format!("params.{key} is required")))
}

impl Jobs {
    /// `[modules.jobs] call_timeout_ms`, else `[limits] call_timeout_ms`.
    fn call_timeout(&self) -> std::time::Duration {
        let Ok(state) = self.state() else {
            return std::time::Duration::from_secs(10);
        };
        let config = state.config.load();
        config
            .modules
            .settings_for(MODULE)
            .call_timeout
            .unwrap_or(config.limits.call_timeout)
    }

    async fn command(
        &self,
        command: &str,
        mut who: Who,
        params: Map<String, Value>,
    ) -> Result<Value, JobError> {
        match command {
            "launch" => {
                if let Some(user) = text(&params, "user")? {
                    if !who.admin && user != who.user {
                        return Err(JobError::Params(
                            "params.user names another user: only admins launch for others"
                                .to_owned(),
                        ));
                    }
                    who.user = user;
                }
                if who.user.is_empty() {
                    return Err(JobError::Params(
                        "a job needs an owner: the operator gives params.user".to_owned(),
                    ));
                }
                let password = text(&params, "password")?;
                if password
                    .as_ref()
                    .is_some_and(|p| p.len() > MAX_JOB_PASSWORD_BYTES)
                {
                    return Err(JobError::Params(format!(
                        "params.password is longer than {MAX_JOB_PASSWORD_BYTES} bytes"
                    )));
                }
                let req = LaunchRequest {
                    app: required(&params, "app")?,
                    password,
                };
                self.launch(&who, req).await
            }
            "list" => {
                let only = text(&params, "user")?;
                let user = who.user.clone();
                let jobs = self.matching(|job| match (&only, who.admin) {
                    (Some(u), true) => &job.owner == u,
                    (None, true) => true,
                    _ => job.owner == user,
                });
                Ok(json!({"jobs": jobs.iter().map(|s| s.job().view()).collect::<Vec<_>>()}))
            }
            "stop" => {
                let slot = self.visible(&required(&params, "job_id")?, &who.user, who.admin)?;
                self.stop_and_wait(&slot).await;
                Ok(slot.job().view())
            }
            "restart" => {
                let slot = self.visible(&required(&params, "job_id")?, &who.user, who.admin)?;
                self.restart(slot).await
            }
            "logs" => {
                let slot = self.visible(&required(&params, "job_id")?, &who.user, who.admin)?;
                let tail = match params.get("tail") {
                    None | Some(Value::Null) => DEFAULT_TAIL,
                    Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                        JobError::Params("params.tail must be a whole number".to_owned())
                    })?,
                };
                let dir = slot.job().job_dir.clone();
                let lines = tokio::task::spawn_blocking(move || logs::tail(&dir, tail))
                    .await
                    .unwrap_or_default();
                Ok(json!({"job_id": slot.job().job_id, "lines": lines}))
            }
            "apps" => {
                let state = self.state()?;
                let config = state.config.load();
                let apps: Vec<Value> = config
                    .apps
                    .iter()
                    .map(|(name, app)| {
                        json!({
                            "app": name,
                            "protocol": app.protocol.as_str(),
                            "require_password": app.require_password,
                            "hash_algorithm": app.hash_algorithm.as_str(),
                        })
                    })
                    .collect();
                Ok(json!({"apps": apps}))
            }
            other => Err(JobError::Params(format!("jobs has no command {other:?}"))),
        }
    }
}
