//! Why a `jobs` command was refused or failed, and the error code the
//! caller gets for it.

use modhost_plugin_api::ErrorCode;

use crate::{accounts::StoreError, modules::CallFailure};

/// A `jobs` command that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The params are not what the command takes.
    #[error("{0}")]
    Params(String),
    /// No `[apps.<name>]` has this name.
    #[error("no app is named {0:?}; jobs.apps lists the apps this host launches")]
    UnknownApp(String),
    /// No job with this id, or not one the caller may see.
    #[error("you have no job {0:?}; jobs.list shows yours")]
    NoJob(String),
    /// The app needs a password and the launch gave none.
    #[error("app {0:?} requires a password: give params.password")]
    PasswordRequired(String),
    /// The caller has as many jobs of this app as one user may.
    #[error(
        "you have {limit} jobs of app {app:?} starting or running, the most one user may ([apps.{app}] max_jobs_per_user); stop one first"
    )]
    PerUserLimit {
        /// The app.
        app: String,
        /// The limit in force.
        limit: usize,
    },
    /// All users together have as many jobs of this app as allowed.
    #[error(
        "{limit} jobs of app {app:?} are starting or running, the most this host runs ([apps.{app}] max_jobs); try again later"
    )]
    GlobalLimit {
        /// The app.
        app: String,
        /// The limit in force.
        limit: usize,
    },
    /// Every port of the app's range is in use or held by another job.
    #[error(
        "no free port in {first}-{last} for app {app:?}: every one is in use or held by a job; stop a job or widen [apps.{app}] port_range"
    )]
    NoPort {
        /// The app.
        app: String,
        /// The range's first port.
        first: u16,
        /// Its last port.
        last: u16,
    },
    /// The job's directory, certificate, hash or config could not be made.
    #[error("cannot prepare the job: {0}; check that [modules] state_dir is writable by the host")]
    Prepare(String),
    /// The program could not be started.
    #[error("cannot start {command:?}: {source}; check [apps.{app}] command")]
    Spawn {
        /// The app.
        app: String,
        /// The program.
        command: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The app's module did not make its config.
    #[error(
        "app {app:?}'s module {module:?} did not make the job's config ({module}.gen_config): {message}; check that it is loaded and serves gen_config, or remove [apps.{app}] module"
    )]
    Module {
        /// The app.
        app: String,
        /// The module.
        module: String,
        /// What it said.
        message: String,
    },
    /// The registry could not be written or read.
    #[error("job registry: {0}")]
    Store(#[from] StoreError),
    /// The host is stopping.
    #[error("the host is shutting down; try again when it is back")]
    ShuttingDown,
}

impl JobError {
    /// The error code the caller gets.
    pub fn code(&self) -> ErrorCode {
        match self {
            JobError::Params(_) | JobError::PasswordRequired(_) => ErrorCode::MissingParam,
            JobError::PerUserLimit { .. } | JobError::GlobalLimit { .. } => ErrorCode::RateLimited,
            JobError::ShuttingDown => ErrorCode::ModuleUnavailable,
            _ => ErrorCode::ModuleError,
        }
    }
}

impl From<JobError> for CallFailure {
    fn from(e: JobError) -> Self {
        CallFailure::new(e.code(), e.to_string())
    }
}
