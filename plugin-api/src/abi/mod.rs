//! The binary interface between the host and a module library: what a host
//! (or the testkit) needs and a module author never names.
//!
//! Every type here is `StableAbi`; abi_stable compares each one's layout by
//! type name, package and fields when a library is loaded, not by the Rust
//! module it is declared in, so these paths can change without changing the
//! ABI. Their fields and order cannot.
//!
//! # Layout
//! - `message`: the typed messages host → module ([`ToModule`]) and
//!   module → host ([`FromModule`]), and [`Failure`]
//! - `context`: the [`HostContext`] an instance starts with, and the
//!   [`HostSink`] its messages go to
//! - `root`: the [`ModuleRoot`] the host finds in the library, [`ABI`] id,
//!   and the [`ModuleInstance`] the host runs
//! - `inline`: [`InlineCalls`], the optional entry point that runs calls of
//!   non-blocking commands on the caller's thread, exported beside the root
//!   module as [`INLINE_SYMBOL`], and the [`Started`] instance it returns
//! - `validate`: [`check_call`], the manifest checks every call passes
//!   before the module sees it

mod context;
mod inline;
mod message;
mod root;
mod validate;

pub use context::{HostContext, HostSink, HostSink_TO, HostSinkBox};
pub use inline::{
    INLINE_SYMBOL, InlineCalls, InlineCalls_TO, InlineCallsBox, InlineEntry, InlineExport,
    InlineOutcome, Started,
};
pub use message::{CallMsg, CallResultMsg, EventMsg, Failure, FromModule, ToModule};
pub use root::{
    ABI, AbiInfo, ModuleInstance, ModuleInstance_TO, ModuleInstanceBox, ModuleRoot, ModuleRoot_Ref,
    RunExit,
};
pub use validate::{DEFAULT_MAX_PARAMS_BYTES, check_call};
