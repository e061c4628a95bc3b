//! Calls run on the caller's thread: the entry point a module offers for
//! the commands it declared non-blocking ([`Module::NON_BLOCKING`]).
//!
//! A call handed to the instance thread costs two thread switches (the
//! host's worker wakes the instance, the instance's answer wakes the
//! worker); for a command that takes a microsecond that is most of the
//! call. [`InlineCalls::call`] runs the handler on the host's thread
//! instead, under the same lock the instance thread handles its messages
//! under, so the module still sees one message at a time.
//!
//! [`Module::NON_BLOCKING`]: crate::Module::NON_BLOCKING

use abi_stable::{
    StableAbi,
    std_types::{RBox, RResult, RString, RVec},
};

use super::{
    message::{CallMsg, Failure},
    root::ModuleInstanceBox,
};

/// What became of a call offered to [`InlineCalls::call`].
#[repr(u8)]
#[derive(StableAbi, Debug)]
pub enum InlineOutcome {
    /// The instance is handling another message (or could not be rebuilt):
    /// the call, handed back, goes to the instance thread's inbox.
    Busy(CallMsg),
    /// The handler returned: the result as JSON text, or why it failed.
    Done(RResult<RString, Failure>),
    /// The handler panicked. `failure` answers the caller; `rebuilt` says
    /// whether a new instance replaced the one it may have left
    /// half-updated (`RErr`: why not; the instance then takes no more
    /// messages and its `run` returns `RunExit::Failed`).
    Panicked {
        /// The `module-panicked` answer for the caller.
        failure: Failure,
        /// Whether `on_load` built a fresh instance.
        rebuilt: RResult<(), RString>,
    },
}

/// Runs one call of a non-blocking command on the calling thread.
#[abi_stable::sabi_trait]
pub trait InlineCalls: Send + Sync {
    /// Handles `msg` now if the instance is idle; hands it back otherwise.
    #[sabi(last_prefix_field)]
    fn call(&self, msg: CallMsg) -> InlineOutcome;
}

/// An owned, FFI-safe [`InlineCalls`].
pub type InlineCallsBox = InlineCalls_TO<'static, RBox<()>>;

/// What `ModuleRoot::start_inline` returns: the instance, its inline entry
/// point and the commands that may use it.
#[repr(C)]
#[derive(StableAbi)]
pub struct Started {
    /// The instance the host runs on a thread of its own.
    pub instance: ModuleInstanceBox,
    /// Runs calls of `non_blocking` commands on the caller's thread.
    pub inline: InlineCallsBox,
    /// The commands the author declared non-blocking.
    pub non_blocking: RVec<RString>,
}
