//! The command broker: checks a call against the module's manifest, stamps
//! the caller, and hands it to the module's running generation.
//!
//! # Layout
//! - `validate`: manifest checks (command, role, params) before a module sees a call
//! - this file: `Broker::call`, admission with retry across a hot swap

mod validate;

use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use modhost_plugin_api::{Caller, ErrorCode};

use crate::modules::{Admission, CallFailure, CallSink, Registry};

pub use validate::CommandInfo;

/// A call as the broker receives it.
pub struct CallRequest<'a> {
    /// Target module.
    pub module: &'a str,
    /// Target command.
    pub command: &'a str,
    /// Params as JSON text (`None`: `{}`).
    pub params: Option<&'a str>,
    /// Who is calling (stamped by the host, never taken from params).
    pub caller: Caller,
}

/// Routes calls to modules.
pub struct Broker {
    registry: Arc<Registry>,
    next_id: AtomicU64,
    max_params_bytes: AtomicUsize,
}

impl Broker {
    /// A broker over `registry`.
    pub fn new(registry: Arc<Registry>, max_params_bytes: usize) -> Self {
        Self {
            registry,
            next_id: AtomicU64::new(1),
            max_params_bytes: AtomicUsize::new(max_params_bytes),
        }
    }

    /// The registry behind this broker.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Changes the params size limit (config reload).
    pub fn set_max_params_bytes(&self, bytes: usize) {
        self.max_params_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Checks a call without running it: the command it names, or why not.
    pub fn check(&self, req: &CallRequest<'_>) -> Result<CommandInfo, CallFailure> {
        let generation = self.registry.get(req.module).ok_or_else(|| {
            CallFailure::new(
                ErrorCode::UnknownModule,
                format!("no module named {:?} is loaded", req.module),
            )
        })?;
        validate::check(
            &generation.manifest,
            req,
            self.max_params_bytes.load(Ordering::Relaxed),
        )
    }

    /// Validates and dispatches a call; `make_sink` builds the answer's
    /// destination once the command is known (so a fire-and-forget command
    /// can get a sink that discards the result). On `Err` nothing was run.
    pub fn call(
        &self,
        req: CallRequest<'_>,
        make_sink: impl FnOnce(&CommandInfo) -> Box<dyn CallSink>,
    ) -> Result<CommandInfo, CallFailure> {
        let info = self.check(&req)?;
        let params = req.params.unwrap_or("{}");
        let mut sink = make_sink(&info);
        // A generation that is being swapped out refuses new calls; the
        // registry then already holds its successor, so ask again.
        for _ in 0..8 {
            let Some(generation) = self.registry.get(req.module) else {
                let failure = CallFailure::new(
                    ErrorCode::UnknownModule,
                    format!("module {:?} was removed", req.module),
                );
                sink.finish(Err(failure.clone()));
                return Err(failure);
            };
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            match generation.call(id, req.command, params, req.caller.clone(), sink) {
                Admission::Accepted => return Ok(info),
                Admission::Stopping(back) => {
                    sink = back;
                    std::thread::yield_now();
                }
                Admission::Rejected(back, failure) => {
                    back.finish(Err(failure.clone()));
                    return Err(failure);
                }
            }
        }
        let failure = CallFailure::new(
            ErrorCode::ModuleUnavailable,
            format!("module {:?} is being replaced; try again", req.module),
        );
        sink.finish(Err(failure.clone()));
        Err(failure)
    }
}

/// A sink that drops the module's answer (fire-and-forget commands).
pub struct Discard;

impl CallSink for Discard {
    fn item(&mut self, _result: &str) {}
    fn finish(self: Box<Self>, _outcome: Result<&str, CallFailure>) {}
}
