//! The host's side of a module's `Host` handle: everything a module sends
//! arrives here, on the module's own thread.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Instant,
};

use modhost_plugin_api::{
    ErrorCode, LogLevel,
    abi::{CallResultMsg, Failure, FromModule, HostSink, ToModule},
    abi_stable::{external_types::crossbeam_channel::RSender, std_types::RResult},
};

use crate::util::{
    budget::{Take, Window},
    sync,
};

use super::{
    context::Handling,
    pending::{CallFailure, CallSink, PendingCalls},
    services::HostServices,
};

/// Log lines a module may write per second before the rest are dropped.
const LOG_LINES_PER_SECOND: u32 = 1_000;

/// Publishes a module may make per second before the rest are refused
/// (`rate-limited`), unless `[modules.<name>] publishes_per_second` says
/// otherwise. Memory does not need it: a publish is delivered (or
/// dropped for a full outbox) before `publish` returns, so nothing queues.
/// It bounds the CPU a runaway loop spends parsing and matching rooms, and
/// makes the host say which module floods: without it, the only sign is
/// its subscribers being closed as slow consumers (4008). Far above what a
/// fan-out can deliver anyway (250 publishes/s to 1,000 subscribers is
/// 250,000 deliveries/s).
pub(crate) const DEFAULT_PUBLISHES_PER_SECOND: u32 = 50_000;

pub(crate) struct ModuleSink {
    pub(crate) module: String,
    pub(crate) generation: u64,
    pub(crate) pending: Arc<PendingCalls>,
    pub(crate) services: Arc<dyn HostServices>,
    pub(crate) inbox: RSender<ToModule>,
    pub(crate) restarts: Arc<AtomicU64>,
    /// The per-second budgets of log lines *and* publishes (named for the
    /// first; `Generation::start` builds it with `Mutex::default()`).
    pub(crate) log_budget: Mutex<LogBudget>,
    /// The publish budget, set by config (live).
    pub(crate) publishes_per_second: Arc<AtomicU32>,
    /// Which call the instance is handling, for the services.
    pub(crate) handling: Arc<Handling>,
}

/// What a module may send per second.
#[derive(Default)]
pub(crate) struct LogBudget {
    log: Window,
    publish: Window,
}

impl ModuleSink {
    fn budget(&self) -> std::sync::MutexGuard<'_, LogBudget> {
        sync::lock(&self.log_budget)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let take = self.budget().log.take(LOG_LINES_PER_SECOND, Instant::now());
        let module = self.module.as_str();
        match take {
            Take::Allowed { over: 0 } => {}
            Take::Allowed { over: dropped } => tracing::warn!(
                module,
                dropped,
                "module logged more than {LOG_LINES_PER_SECOND} lines in a second; {dropped} were dropped"
            ),
            Take::FirstOver => {
                tracing::warn!(
                    module,
                    "module logs more than {LOG_LINES_PER_SECOND} lines per second; dropping the rest of this second's"
                );
                return;
            }
            Take::Over => return,
        }
        match level {
            LogLevel::Error => tracing::error!(target: "modhost::module", module, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "modhost::module", module, "{message}"),
            LogLevel::Info => tracing::info!(target: "modhost::module", module, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "modhost::module", module, "{message}"),
            LogLevel::Trace => tracing::trace!(target: "modhost::module", module, "{message}"),
        }
    }

    /// Charges one publish to the budget; `Err` once it is spent. Logs at
    /// most once per second per module (the first refusal of a second, and
    /// the count refused in the previous one).
    fn charge_publish(&self) -> Result<(), CallFailure> {
        let limit = self.publishes_per_second.load(Ordering::Relaxed);
        let take = self.budget().publish.take(limit, Instant::now());
        let module = self.module.as_str();
        match take {
            Take::Allowed { over: 0 } => Ok(()),
            Take::Allowed { over: refused } => {
                tracing::warn!(
                    module,
                    refused,
                    "module published more than {limit} messages in a second; {refused} publishes were refused (rate-limited)"
                );
                Ok(())
            }
            over => {
                if over == Take::FirstOver {
                    tracing::warn!(
                        module,
                        "module publishes more than {limit} messages per second; refusing the rest of this second's (rate-limited)"
                    );
                }
                Err(CallFailure::new(
                    ErrorCode::RateLimited,
                    format!(
                        "publish budget spent: at most {limit} publishes per second per module"
                    ),
                ))
            }
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
                    self.handling.answered(id);
                    self.pending.finish(id, Ok(result.as_str()));
                } else {
                    self.pending.item(id, result.as_str());
                }
                Ok(0)
            }
            FromModule::Error { id, failure } => {
                self.handling.answered(id);
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
            FromModule::Publish { rooms, data } => self.charge_publish().and_then(|()| {
                let on_behalf = self.handling.current();
                self.services
                    .publish(&self.module, on_behalf.as_deref(), &rooms, &data)
            }),
            FromModule::SendToUser { user, data } => {
                let on_behalf = self.handling.current();
                self.services
                    .send_to_user(&self.module, on_behalf.as_deref(), &user, &data)
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
                // Refusals come back through `reply` too, into the inbox
                // the calling module waits on.
                let on_behalf = self.handling.current();
                self.services.call_from_module(
                    &self.module,
                    on_behalf.as_deref(),
                    &module,
                    &command,
                    &params,
                    Box::new(reply),
                );
                Ok(0)
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
