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
//! The entry point is not a field of the root module: abi_stable refuses a
//! library whose root module has fewer fields than the host's, so a new
//! field would lock out every module built before it. `export_module!`
//! exports it as a second symbol, [`INLINE_SYMBOL`], with its own layout
//! for the host to check; a library without the symbol (built before it
//! existed) loads as before and runs every call on its instance thread.
//!
//! [`Module::NON_BLOCKING`]: crate::Module::NON_BLOCKING

use abi_stable::{
    StableAbi,
    std_types::{RBox, RResult, RString, RVec},
    type_layout::TypeLayout,
};

use super::{
    context::HostContext,
    message::{CallMsg, Failure},
    root::ModuleInstanceBox,
};

/// The symbol `export_module!` exports an [`InlineExport`] under
/// (NUL-terminated, for `dlsym`). A new version of the export gets a new
/// name.
pub const INLINE_SYMBOL: &[u8] = b"modhost_inline_export_v1\0";

/// What [`INLINE_SYMBOL`] points to: the entry point and its layout.
/// Its own shape never changes (a new one gets a new symbol).
#[repr(C)]
pub struct InlineExport {
    /// The layout of `entry` as the library was built; the host checks it
    /// against its own [`InlineEntry`] before calling anything.
    pub layout: &'static TypeLayout,
    /// The entry point.
    pub entry: InlineEntry,
}

/// Starts an instance with its inline entry point.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct InlineEntry {
    /// Like the root module's `start`, and also returns the entry point
    /// that runs calls of the module's non-blocking commands on the
    /// caller's thread.
    pub start_inline: extern "C" fn(HostContext) -> RResult<Started, RString>,
}

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
