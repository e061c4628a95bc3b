//! Calls of the commands a module declared non-blocking, run on the
//! caller's thread (a tokio worker) instead of the instance thread.
//!
//! Handing a call to the instance thread and its answer back costs two
//! thread switches, most of a call to a command that takes microseconds.
//! A module built with `start_inline` offers an entry point that runs such
//! a call at once if its instance is idle (it hands the call back when
//! not, and the call takes the usual way). A declaration is the author's
//! promise, so the host times every inline call: [`DEMOTE_AFTER_OVERRUNS`]
//! calls in a row over [`INLINE_BUDGET`] demote their command, whose calls
//! then go to the instance thread for the rest of the generation (logged,
//! and listed in `GET /api/modules`).

use std::{
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
    time::{Duration, Instant},
};

use modhost_plugin_api::{
    Manifest,
    abi::{
        CallMsg, Failure, HostContext, InlineCallsBox, InlineEntry, InlineOutcome,
        ModuleInstanceBox, ModuleRoot_Ref,
    },
    abi_stable::std_types::{RResult, RString, RVec},
};

use super::pending::{CallFailure, CallSink};

/// How long an inline call may take before its command is demoted. A
/// worker running it serves no other connection meanwhile; a non-blocking
/// command takes microseconds, so a millisecond means it blocks after all.
/// A constant, not a config key: the config model is shared and fixed.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// Inline calls of one command in a row over [`INLINE_BUDGET`] that demote
/// it. Not one: the budget is wall time, and on a busy machine a worker
/// preempted in the middle of a two-microsecond call overruns it now and
/// then (measured: a 1.35 ms `echo` at load 6 on two cores). A command that
/// blocks overruns every time.
pub const DEMOTE_AFTER_OVERRUNS: u32 = 3;

/// The inline entry point of a generation and the commands it may run.
pub(crate) struct InlineCommands {
    calls: InlineCallsBox,
    commands: Vec<InlineCommand>,
}

/// A command declared non-blocking, its recent overruns, and whether they
/// demoted it.
struct InlineCommand {
    name: String,
    /// Calls in a row over the budget.
    overruns: AtomicU32,
    demoted: AtomicBool,
}

impl InlineCommand {
    fn new(name: String) -> Self {
        InlineCommand {
            name,
            overruns: AtomicU32::new(0),
            demoted: AtomicBool::new(false),
        }
    }

    /// Counts a call that took `took`; true when it is the overrun that
    /// demotes the command (once).
    fn record(&self, took: Duration) -> bool {
        if took <= INLINE_BUDGET {
            // Read first: a store on every call would bounce the cache line
            // between the workers calling this command.
            if self.overruns.load(Ordering::Relaxed) != 0 {
                self.overruns.store(0, Ordering::Relaxed);
            }
            return false;
        }
        self.overruns.fetch_add(1, Ordering::Relaxed) + 1 >= DEMOTE_AFTER_OVERRUNS
            && !self.demoted.swap(true, Ordering::Relaxed)
    }
}

/// What became of a call offered to the inline entry point.
pub(crate) enum Ran {
    /// The instance was busy: the call, handed back, goes to its inbox.
    Busy(CallMsg),
    /// Answered: the result as JSON text, or the module's failure.
    Answered(Result<RString, Failure>),
    /// The handler panicked; `rebuilt` is `Err(why)` if no new instance
    /// could be built.
    Panicked {
        failure: Failure,
        rebuilt: Result<(), String>,
    },
}

impl InlineCommands {
    /// Keeps the declared commands the manifest serves and that answer
    /// once: a streaming command emits through the host, which an inline
    /// call may not use.
    pub(crate) fn new(calls: InlineCallsBox, declared: RVec<RString>, manifest: &Manifest) -> Self {
        let commands = declared
            .iter()
            .filter(|name| {
                let served = manifest.find(name.as_str()).is_some_and(|spec| !spec.streams);
                if !served {
                    tracing::warn!(
                        module = %manifest.name, command = %name,
                        "command declared non-blocking is not in the manifest or streams; its calls run on the instance thread"
                    );
                }
                served
            })
            .map(|name| InlineCommand::new(name.to_string()))
            .collect();
        Self { calls, commands }
    }

    /// Whether calls of `command` may run inline now.
    pub(crate) fn offers(&self, command: &str) -> bool {
        self.find(command)
            .is_some_and(|c| !c.demoted.load(Ordering::Relaxed))
    }

    fn find(&self, command: &str) -> Option<&InlineCommand> {
        self.commands.iter().find(|c| c.name == command)
    }

    /// Runs `msg` on this thread if the instance is idle, and demotes its
    /// command if the call overran [`INLINE_BUDGET`].
    pub(crate) fn run(&self, msg: CallMsg, module: &str, generation: u64) -> Ran {
        let entry = self.find(msg.command.as_str());
        let started = Instant::now();
        let outcome = self.calls.call(msg);
        let took = started.elapsed();
        let ran = match outcome {
            InlineOutcome::Busy(msg) => return Ran::Busy(msg),
            InlineOutcome::Done(RResult::ROk(result)) => Ran::Answered(Ok(result)),
            InlineOutcome::Done(RResult::RErr(failure)) => Ran::Answered(Err(failure)),
            InlineOutcome::Panicked { failure, rebuilt } => Ran::Panicked {
                failure,
                rebuilt: rebuilt.into_result().map_err(RString::into_string),
            },
        };
        let Some(entry) = entry else { return ran };
        if entry.record(took) {
            tracing::warn!(
                module, generation, command = %entry.name, took_us = took.as_micros() as u64,
                "{DEMOTE_AFTER_OVERRUNS} calls in a row of a command the module declared non-blocking overran the budget of {} µs on the host's thread (the last took {} µs); its calls now run on the instance thread until a new build loads. Remove it from the module's NON_BLOCKING list if it may block",
                INLINE_BUDGET.as_micros(),
                took.as_micros()
            );
        }
        ran
    }

    /// The commands whose calls may run inline, and those demoted.
    pub(crate) fn listing(&self) -> (Vec<String>, Vec<String>) {
        let (demoted, inline): (Vec<_>, Vec<_>) = self
            .commands
            .iter()
            .partition(|c| c.demoted.load(Ordering::Relaxed));
        let names = |list: Vec<&InlineCommand>| list.into_iter().map(|c| c.name.clone()).collect();
        (names(inline), names(demoted))
    }
}

/// Starts an instance through `start_inline` when the library exports it
/// (and keeps its inline entry point if it declared any non-blocking
/// command), through the root module's `start` otherwise.
pub(crate) fn start_instance(
    root: ModuleRoot_Ref,
    inline: Option<InlineEntry>,
    ctx: HostContext,
    manifest: &Manifest,
) -> Result<(ModuleInstanceBox, Option<InlineCommands>), String> {
    let Some(InlineEntry { start_inline }) = inline else {
        return (root.start())(ctx)
            .into_result()
            .map(|instance| (instance, None))
            .map_err(RString::into_string);
    };
    let started = start_inline(ctx)
        .into_result()
        .map_err(RString::into_string)?;
    let inline = (!started.non_blocking.is_empty())
        .then(|| InlineCommands::new(started.inline, started.non_blocking, manifest));
    Ok((started.instance, inline))
}

/// Answers a call that ran inline.
pub(crate) fn answer(sink: Box<dyn CallSink>, outcome: Result<RString, Failure>) {
    match outcome {
        Ok(result) => sink.finish(Ok(result.as_str())),
        Err(failure) => sink.finish(Err(CallFailure::new(
            failure.code,
            failure.message.into_string(),
        ))),
    }
}

#[cfg(test)]
mod tests;
