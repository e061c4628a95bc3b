//! The host's side of a module's `Host` handle: everything a module sends
//! arrives here, on the module's own thread.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use modhost_plugin_api::{
    CallResultMsg, ErrorCode, Failure, FromModule, HostSink, LogLevel, ToModule,
    abi_stable::{external_types::crossbeam_channel::RSender, std_types::RResult},
};

use super::{
    pending::{CallFailure, CallSink, PendingCalls},
    services::HostServices,
};

/// Log lines a module may write per second before the rest are dropped.
const LOG_LINES_PER_SECOND: u32 = 1_000;

pub(crate) struct ModuleSink {
    pub(crate) module: String,
    pub(crate) generation: u64,
    pub(crate) pending: Arc<PendingCalls>,
    pub(crate) services: Arc<dyn HostServices>,
    pub(crate) inbox: RSender<ToModule>,
    pub(crate) restarts: Arc<AtomicU64>,
    pub(crate) log_budget: Mutex<LogBudget>,
}

pub(crate) struct LogBudget {
    window: Instant,
    used: u32,
    dropped: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self {
            window: Instant::now(),
            used: 0,
            dropped: 0,
        }
    }
}

impl ModuleSink {
    fn log(&self, level: LogLevel, message: &str) {
        let dropped = {
            let mut budget = self.log_budget.lock().unwrap_or_else(|p| p.into_inner());
            if budget.window.elapsed().as_secs() >= 1 {
                let dropped = budget.dropped;
                *budget = LogBudget::default();
                budget.used = 1;
                dropped
            } else if budget.used >= LOG_LINES_PER_SECOND {
                budget.dropped += 1;
                return;
            } else {
                budget.used += 1;
                0
            }
        };
        let module = self.module.as_str();
        if dropped > 0 {
            tracing::warn!(
                module,
                dropped,
                "module logged more than {LOG_LINES_PER_SECOND} lines per second; lines were dropped"
            );
        }
        match level {
            LogLevel::Error => tracing::error!(target: "modhost::module", module, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "modhost::module", module, "{message}"),
            LogLevel::Info => tracing::info!(target: "modhost::module", module, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "modhost::module", module, "{message}"),
            LogLevel::Trace => tracing::trace!(target: "modhost::module", module, "{message}"),
        }
    }
}

fn to_failure(f: CallFailure) -> Failure {
    Failure {
        code: f.code,
        message: f.message.into(),
    }
}

impl HostSink for ModuleSink {
    fn send(&self, msg: FromModule) -> RResult<u64, Failure> {
        let result = match msg {
            FromModule::Reply { id, result, done } => {
                if done {
                    self.pending.finish(id, Ok(result.as_str()));
                } else {
                    self.pending.item(id, result.as_str());
                }
                Ok(0)
            }
            FromModule::Error { id, failure } => {
                if failure.code == ErrorCode::ModulePanicked {
                    let restarts = self.restarts.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        module = %self.module, generation = self.generation, restarts,
                        "module panicked while handling a call and was restarted: {}", failure.message
                    );
                }
                self.pending.finish(
                    id,
                    Err(CallFailure::new(
                        failure.code,
                        failure.message.into_string(),
                    )),
                );
                Ok(0)
            }
            FromModule::Publish { rooms, data } => {
                self.services.publish(&self.module, &rooms, &data)
            }
            FromModule::SendToUser { user, data } => {
                self.services.send_to_user(&self.module, &user, &data)
            }
            FromModule::Call {
                id,
                module,
                command,
                params,
            } => {
                let reply = ReplyToModule {
                    id,
                    inbox: self.inbox.clone(),
                };
                self.services
                    .call_from_module(&self.module, &module, &command, &params, Box::new(reply))
                    .map(|()| 0)
            }
            FromModule::Log { level, message } => {
                self.log(level, &message);
                Ok(0)
            }
        };
        result.map_err(to_failure).into()
    }
}

/// Answers a module-to-module call into the calling module's inbox.
struct ReplyToModule {
    id: u64,
    inbox: RSender<ToModule>,
}

impl CallSink for ReplyToModule {
    fn item(&mut self, _result: &str) {
        // Module-to-module calls return the final result only.
    }

    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let outcome = match outcome {
            Ok(text) => RResult::ROk(text.into()),
            Err(failure) => RResult::RErr(to_failure(failure)),
        };
        // The caller is blocked waiting for exactly this; its inbox has room
        // because the broker bounds what is queued there.
        let _ = self.inbox.try_send(ToModule::CallResult(CallResultMsg {
            id: self.id,
            outcome,
        }));
    }
}
