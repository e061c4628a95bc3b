//! Signed modules: loading, running and replacing them.
//!
//! # Layout
//! - `error`: why a build was refused (`LoadError`)
//! - `abi_error`: abi_stable's long layout errors → one line
//! - `loader`: verify → sealed memfd copy → dlopen → ABI and manifest checks
//! - `pending`: accepted calls awaiting an answer (answered exactly once)
//! - `services`: what modules can ask of the host (publish, push, call)
//! - `context`: which call an instance is handling when it calls back, so
//!   the services act for that call's user (or the module's own behalf)
//! - `sink`: the host side of a module's `Host` handle
//! - `generation`: one running build: instance thread, inbox, drain, degrade
//! - `inline`: calls of commands declared non-blocking, run on the caller's
//!   thread; the budget that demotes a command overrunning it
//! - `registry`: module name → running generation; refusals; swaps; reset;
//!   config changes applied to modules
//! - `watcher`: modules folder events → rescans → loads, swaps, removals
//! - `testing` (tests only): a sink that writes its answers down, a call

mod abi_error;
mod context;
mod error;
mod generation;
mod inline;
mod loader;
mod pending;
mod registry;
mod services;
mod sink;
#[cfg(test)]
pub(crate) mod testing;
mod watcher;

pub use context::{CallContext, UserRights};
pub use error::{LoadError, LoadErrorKind};
pub use generation::{Admission, DEGRADE_AFTER_TIMEOUTS, GenState, Generation, StartOptions};
pub use inline::{DEMOTE_AFTER_OVERRUNS, INLINE_BUDGET};
pub use loader::{LoadPolicy, LoadedLibrary, SignedBuild, check, inspect, load, open, verify};
pub use pending::{CallFailure, CallSink, PendingCalls};
pub use registry::{
    DISABLED_FILE, LoadOutcome, MAX_EVENTS, ModuleEvent, ModuleInfo, RefusedBuild, Registry,
    ResetError, RuntimeSettings, ToggleError,
};
pub use services::HostServices;
pub(crate) use sink::DEFAULT_PUBLISHES_PER_SECOND;
pub use watcher::{DEBOUNCE, ModuleWatcher, SETTLE};
