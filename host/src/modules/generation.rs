//! One loaded build of a module: its instance thread, inbox and unanswered
//! calls. A generation is started once, serves until it is replaced or
//! removed, then drains and stops. Its library stays mapped.

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use modhost_plugin_api::{
    Caller, ErrorCode, LogLevel, Manifest,
    abi::{
        CallMsg, EventMsg, Failure, HostContext, HostSink_TO, ModuleRoot_Ref, RunExit, ToModule,
    },
    abi_stable::{
        external_types::crossbeam_channel::{self as channel, RSender},
        sabi_trait::TD_Opaque,
        std_types::RArc,
    },
};

use crate::util::sync;

use super::{
    context::{CallContext, Handling, UserRights},
    inline::{InlineCommands, Ran, answer, start_instance},
    loader::LoadedLibrary,
    pending::{CallFailure, CallSink, PendingCalls},
    services::HostServices,
    sink::ModuleSink,
};

/// How long `on_load` may take before the build is refused.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls in a row that may time out before a generation is marked
/// [`GenState::Degraded`] and stops receiving calls.
///
/// One timeout can be a slow call; three with no answer in between mean the
/// instance thread is most likely stuck (a handler that never returns keeps
/// every call queued behind it waiting too). Degrading it answers new calls
/// at once with `module-unavailable` instead of letting each wait for the
/// full timeout. A new build or `POST /api/modules/{name}/reset` ends it.
/// A constant, not a config key: the config model is shared and fixed.
pub const DEGRADE_AFTER_TIMEOUTS: u64 = 3;

/// Messages an instance's inbox may hold before an event for it is
/// dropped. The inbox has 16 places beyond the calls admitted
/// (`[limits] module_queue`) for control messages; an event is queued only
/// while fewer than this many messages wait, and the inbox is FIFO, so at
/// most this many events are ever in it: calls and `Shutdown` always
/// find their place, and a busy module loses events rather than calls.
pub(crate) const EVENT_ROOM: usize = 8;

/// Lifecycle of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GenState {
    /// Serving calls.
    Running = 0,
    /// Replaced or removed: finishing what it accepted.
    Draining = 1,
    /// Its instance returned; nothing more runs.
    Stopped = 2,
    /// Its instance failed and could not be rebuilt.
    Failed = 3,
    /// Too many calls in a row timed out: it gets no calls until a new
    /// build loads or an operator resets it.
    Degraded = 4,
}

impl GenState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => GenState::Running,
            1 => GenState::Draining,
            2 => GenState::Stopped,
            4 => GenState::Degraded,
            _ => GenState::Failed,
        }
    }

    /// Lower-case name for the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            GenState::Running => "running",
            GenState::Draining => "draining",
            GenState::Stopped => "stopped",
            GenState::Failed => "failed",
            GenState::Degraded => "degraded",
        }
    }
}

/// Settings a generation starts with.
pub struct StartOptions {
    /// Generation number (1 for the first build loaded).
    pub generation: u64,
    /// The module's `[modules.<name>]` table as JSON.
    pub config: serde_json::Value,
    /// Calls that may wait for this instance.
    pub queue: usize,
    /// How long a call may take.
    pub call_timeout: Duration,
    /// Publishes the module may make per second.
    pub publishes_per_second: u32,
}

/// A loaded, running build of a module.
pub struct Generation {
    /// Module name.
    pub name: String,
    /// The manifest (commands, roles) the broker validates against.
    pub manifest: Manifest,
    /// Signed sequence number.
    pub seq: u64,
    /// Generation number.
    pub generation: u64,
    /// File it was loaded from.
    pub file: std::path::PathBuf,
    /// When it started serving.
    pub loaded_at: SystemTime,
    /// Size of the library image.
    pub size: u64,
    /// The verified, mapped library this instance runs. Kept so that an
    /// operator reset can start a fresh instance without reading or
    /// verifying any file again.
    pub library: Arc<LoadedLibrary>,
    inbox: RSender<ToModule>,
    /// Guards admission against the drain: calls are sent under the read
    /// lock while `accepting` is true; the drain flips it under the write
    /// lock before queueing `Shutdown`, so no call lands behind it.
    accepting: RwLock<bool>,
    pending: Arc<PendingCalls>,
    queue: usize,
    call_timeout_ms: AtomicU64,
    /// Shared with the module's sink, which charges its publishes to it.
    publishes_per_second: Arc<AtomicU32>,
    state: Arc<AtomicU8>,
    restarts: Arc<AtomicU64>,
    timeouts: AtomicU64,
    /// The calls queued for the instance, in its order (shared with its
    /// sink, which asks it whose call a callback belongs to).
    handling: Arc<Handling>,
    /// Runs calls of non-blocking commands on the caller's thread (`None`
    /// for a module built before `start_inline`, or one declaring none).
    inline: Option<InlineCommands>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Why a call was not admitted by a generation.
pub enum Admission {
    /// The module got it.
    Accepted,
    /// This generation no longer takes calls: ask the registry again.
    Stopping(Box<dyn CallSink>),
    /// The call failed before reaching the module.
    Rejected(Box<dyn CallSink>, CallFailure),
}

impl Generation {
    /// Starts an instance of `lib` on a thread of its own and waits until
    /// `on_load` succeeded. `Err` carries the module's reason.
    pub fn start(
        lib: Arc<LoadedLibrary>,
        options: StartOptions,
        services: Arc<dyn HostServices>,
    ) -> Result<Arc<Generation>, String> {
        let name = lib.manifest.name.to_string();
        // Room for every admitted call plus the odd control message and the
        // one module-to-module answer its thread may be waiting for.
        let (tx, rx) = channel::bounded::<ToModule>(options.queue + 16);
        let pending = Arc::new(PendingCalls::default());
        let restarts = Arc::new(AtomicU64::new(0));
        let state = Arc::new(AtomicU8::new(GenState::Running as u8));
        let publish_budget = Arc::new(AtomicU32::new(options.publishes_per_second));
        let handling = Arc::new(Handling::default());
        let sink = ModuleSink {
            module: name.clone(),
            generation: options.generation,
            pending: pending.clone(),
            services,
            inbox: tx.clone(),
            restarts: restarts.clone(),
            log_budget: Mutex::default(),
            publishes_per_second: publish_budget.clone(),
            handling: handling.clone(),
        };
        let ctx = HostContext {
            module: name.clone().into(),
            generation: options.generation,
            config: options.config.to_string().into(),
            log_level: current_log_level(),
            sink: HostSink_TO::from_ptr(RArc::new(sink), TD_Opaque),
            inbox: rx,
        };
        let root: ModuleRoot_Ref = lib.root;
        let (started_tx, started_rx) = mpsc::channel::<Result<Option<InlineCommands>, String>>();
        let manifest = lib.manifest.clone();
        let inline_entry = lib.inline;
        let thread_state = state.clone();
        let thread_pending = pending.clone();
        let thread_name = name.clone();
        let thread_handling = handling.clone();
        let generation = options.generation;
        let thread = std::thread::Builder::new()
            .name(format!("mod-{name}-g{generation}"))
            .spawn(move || {
                thread_handling.bind_to_current_thread();
                let mut instance = match start_instance(root, inline_entry, ctx, &manifest) {
                    Ok((instance, inline)) => {
                        let _ = started_tx.send(Ok(inline));
                        instance
                    }
                    Err(reason) => {
                        let _ = started_tx.send(Err(reason));
                        return;
                    }
                };
                let exit = instance.run();
                instance_ended(
                    &exit,
                    &thread_name,
                    generation,
                    &thread_state,
                    &thread_pending,
                );
                drop(instance);
            })
            .map_err(|e| format!("cannot start a thread for the module: {e}"))?;
        let inline = match started_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(inline)) => inline,
            Ok(Err(reason)) => {
                let _ = thread.join();
                return Err(reason);
            }
            Err(_) => {
                return Err(format!(
                    "on_load did not finish within {} s; its thread is left behind",
                    START_TIMEOUT.as_secs()
                ));
            }
        };
        Ok(Arc::new(Generation {
            name,
            manifest: lib.manifest.clone(),
            seq: lib.envelope.seq,
            generation: options.generation,
            file: lib.file.clone(),
            loaded_at: SystemTime::now(),
            size: lib.size,
            library: lib,
            inbox: tx,
            accepting: RwLock::new(true),
            pending,
            queue: options.queue,
            call_timeout_ms: AtomicU64::new(options.call_timeout.as_millis() as u64),
            publishes_per_second: publish_budget,
            state,
            restarts,
            timeouts: AtomicU64::new(0),
            handling,
            inline,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Current lifecycle state.
    pub fn state(&self) -> GenState {
        GenState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Times the instance was rebuilt after a panic.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Calls answered with `module-timeout` so far.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    /// Calls accepted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The per-call timeout in milliseconds.
    pub fn call_timeout_ms(&self) -> u64 {
        self.call_timeout_ms.load(Ordering::Relaxed)
    }

    /// The publish budget per second.
    pub fn publishes_per_second(&self) -> u32 {
        self.publishes_per_second.load(Ordering::Relaxed)
    }

    /// Sets the publish budget (config reload).
    pub fn set_publishes_per_second(&self, budget: u32) {
        self.publishes_per_second.store(budget, Ordering::Relaxed);
    }

    /// Sets the per-call timeout (config reload).
    pub fn set_call_timeout(&self, timeout: Duration) {
        self.call_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    /// Hands a call to the module. The sink is answered exactly once, now
    /// (rejection) or later (reply, error, timeout, drain). `user` is what
    /// the module may do for the user behind the call while it handles it.
    pub fn call(
        &self,
        id: u64,
        command: &str,
        params: &str,
        caller: Caller,
        user: Option<UserRights>,
        sink: Box<dyn CallSink>,
    ) -> Admission {
        let accepting = sync::read(&self.accepting);
        if !*accepting {
            return Admission::Stopping(sink);
        }
        match self.state() {
            GenState::Running => {}
            GenState::Draining => return Admission::Stopping(sink),
            GenState::Degraded => {
                return Admission::Rejected(
                    sink,
                    CallFailure::new(
                        ErrorCode::ModuleUnavailable,
                        format!(
                            "module {} is degraded: its last {DEGRADE_AFTER_TIMEOUTS} calls timed out; it is back after a new build or an operator reset",
                            self.name
                        ),
                    ),
                );
            }
            GenState::Stopped | GenState::Failed => {
                return Admission::Rejected(
                    sink,
                    CallFailure::new(
                        ErrorCode::ModuleUnavailable,
                        format!(
                            "module {} has stopped; it is back after a new build or an operator reset",
                            self.name
                        ),
                    ),
                );
            }
        }
        let mut msg = CallMsg {
            id,
            command: command.into(),
            params: params.into(),
            caller,
        };
        // Only when nothing waits for the instance thread, so an inline
        // call never overtakes a queued one. `accepting` stays read-locked
        // until it returns: the drain waits for it before queueing
        // `Shutdown`, so `on_unload` never runs beside an inline call.
        if let Some(inline) = &self.inline
            && inline.offers(command)
            && self.handling.is_idle()
        {
            match inline.run(msg, &self.name, self.generation) {
                Ran::Busy(back) => msg = back,
                Ran::Answered(outcome) => {
                    answer(sink, outcome);
                    return Admission::Accepted;
                }
                Ran::Panicked { failure, rebuilt } => {
                    self.inline_panicked(&failure, rebuilt);
                    answer(sink, Err(failure));
                    return Admission::Accepted;
                }
            }
        }
        if self.pending.len() >= self.queue {
            return Admission::Rejected(
                sink,
                CallFailure::new(
                    ErrorCode::ModuleUnavailable,
                    format!(
                        "module {} is busy: {} calls are waiting",
                        self.name, self.queue
                    ),
                ),
            );
        }
        let timeout = Duration::from_millis(self.call_timeout_ms.load(Ordering::Relaxed));
        self.pending.insert(id, sink, timeout);
        let context = CallContext {
            caller: msg.caller.clone(),
            user,
            admin_command: self
                .manifest
                .find(command)
                .is_some_and(|spec| spec.min_role.as_str() == crate::auth::ADMIN_ROLE),
        };
        let msg = ToModule::Call(msg);
        // If the module answered already (it cannot have: it never got the
        // message), `cancel` finds nothing and the call stays answered.
        let sent = self
            .handling
            .queue(id, context, || self.inbox.try_send(msg).is_ok());
        if !sent && let Some(sink) = self.pending.cancel(id) {
            return Admission::Rejected(
                sink,
                CallFailure::new(
                    ErrorCode::ModuleUnavailable,
                    format!("module {} is busy", self.name),
                ),
            );
        }
        Admission::Accepted
    }

    /// Counts a restart after an inline call panicked, as the sink does for
    /// the instance thread; if no new instance could be built, the
    /// generation fails now (its thread returns at its next message).
    fn inline_panicked(&self, failure: &Failure, rebuilt: Result<(), String>) {
        let restarts = self.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            module = %self.name, generation = self.generation, restarts,
            "module panicked while handling a call on the host's thread and was restarted: {}", failure.message
        );
        if let Err(reason) = rebuilt {
            instance_ended(
                &RunExit::Failed(reason.into()),
                &self.name,
                self.generation,
                &self.state,
                &self.pending,
            );
        }
    }

    /// Commands whose calls run on the caller's thread, and those demoted
    /// after overrunning [`super::INLINE_BUDGET`].
    pub fn inline_commands(&self) -> (Vec<String>, Vec<String>) {
        self.inline
            .as_ref()
            .map(InlineCommands::listing)
            .unwrap_or_default()
    }

    /// Answers overdue calls with `module-timeout`. Returns true if that
    /// made this generation [`GenState::Degraded`] just now.
    pub fn expire_overdue(&self, now: Instant) -> bool {
        let n = self.pending.expire(now, &self.name);
        if n == 0 {
            return false;
        }
        self.timeouts.fetch_add(n as u64, Ordering::Relaxed);
        let in_a_row = self.pending.timeouts_in_a_row();
        if in_a_row < DEGRADE_AFTER_TIMEOUTS {
            return false;
        }
        let degraded = self
            .state
            .compare_exchange(
                GenState::Running as u8,
                GenState::Degraded as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok();
        if degraded {
            tracing::warn!(
                module = %self.name, generation = self.generation, timeouts_in_a_row = in_a_row,
                "module degraded: {in_a_row} calls in a row timed out, so its instance is probably stuck; new calls get module-unavailable until a new build is loaded or an operator resets it (POST /api/modules/{}/reset)",
                self.name
            );
        }
        degraded
    }

    /// Whether the instance thread has returned (false while it runs or is
    /// stuck).
    pub fn thread_finished(&self) -> bool {
        sync::lock(&self.thread)
            .as_ref()
            .is_none_or(|t| t.is_finished())
    }

    /// Sends the module its new config table.
    pub fn reconfigure(&self, config: &serde_json::Value) -> bool {
        self.inbox
            .try_send(ToModule::Reconfigure(config.to_string().into()))
            .is_ok()
    }

    /// Queues event `name` with `data` (a JSON object) for the instance's
    /// `Module::on_event`, on its own thread, never waiting. False when
    /// [`EVENT_ROOM`] messages already wait (the module is busy) or the
    /// instance stopped: the event is dropped, and the caller says so.
    pub fn event(&self, name: &str, data: &str) -> bool {
        if self.inbox.len() >= EVENT_ROOM || !*sync::read(&self.accepting) {
            return false;
        }
        self.inbox
            .try_send(ToModule::Event(EventMsg {
                name: name.into(),
                data: data.into(),
            }))
            .is_ok()
    }

    /// Stops taking calls and queues `Shutdown` behind the ones already
    /// accepted, which the instance still answers.
    pub fn begin_drain(&self) {
        let mut accepting = sync::write(&self.accepting);
        if !*accepting {
            return;
        }
        *accepting = false;
        for from in [GenState::Running, GenState::Degraded] {
            let _ = self.state.compare_exchange(
                from as u8,
                GenState::Draining as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        // The queue has room: admission keeps calls below its capacity.
        let _ = self.inbox.try_send(ToModule::Shutdown);
    }

    /// Waits (blocking) until the instance thread has returned, at most
    /// `deadline`. Returns false if it is still running; remaining calls are
    /// then answered with `module-unavailable` and the thread is left behind.
    pub fn wait_stopped(&self, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if self.thread_finished() {
                if let Some(t) = sync::lock(&self.thread).take() {
                    let _ = t.join();
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.pending.fail_all(&CallFailure::new(
            ErrorCode::ModuleUnavailable,
            format!("module {} did not finish in time while stopping", self.name),
        ));
        false
    }
}

fn current_log_level() -> LogLevel {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::ERROR | LevelFilter::OFF => LogLevel::Error,
        LevelFilter::WARN => LogLevel::Warn,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::DEBUG => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

/// Records how an instance's run ended and fails the calls it left
/// unanswered (on the module's own thread, after `run` returned).
fn instance_ended(
    exit: &RunExit,
    name: &str,
    generation: u64,
    state: &AtomicU8,
    pending: &PendingCalls,
) {
    let final_state = match exit {
        RunExit::Failed(reason) => {
            tracing::error!(
                module = %name, generation,
                "module stopped after a failure it could not recover from: {reason}; calls get module-unavailable until a new build is loaded or an operator resets it (POST /api/modules/{name}/reset)"
            );
            GenState::Failed
        }
        RunExit::Shutdown | RunExit::Disconnected => GenState::Stopped,
    };
    state.store(final_state as u8, Ordering::SeqCst);
    let orphans = pending.fail_all(&CallFailure::new(
        ErrorCode::ModuleUnavailable,
        format!("module {name} stopped before answering"),
    ));
    if orphans > 0 {
        tracing::warn!(module = %name, generation, orphans, "calls were still waiting when the module stopped");
    }
}
