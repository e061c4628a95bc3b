//! What the host hands an instance when it starts: the [`HostContext`] and
//! the [`HostSink`] the module's messages go to.
//!
//! The module wraps the context in the author's `Host` handle (`host.rs`);
//! the context itself is only the FFI-safe part both sides must agree on.

use abi_stable::{
    StableAbi,
    external_types::crossbeam_channel::RReceiver,
    std_types::{RArc, RResult, RString},
};

use super::message::{Failure, FromModule, ToModule};
use crate::types::LogLevel;

/// Receives everything a module sends to the host. Implemented by the host.
#[abi_stable::sabi_trait]
pub trait HostSink: Send + Sync {
    /// Delivers `msg`. For `Publish` and `SendToUser` the `Ok` value is the
    /// number of deliveries; an `Err` says why the host could not take it.
    #[sabi(last_prefix_field)]
    fn send(&self, msg: FromModule) -> RResult<u64, Failure>;
}

/// A shareable, FFI-safe [`HostSink`].
pub type HostSinkBox = HostSink_TO<'static, RArc<()>>;

/// Everything an instance gets from the host when it starts.
#[repr(C)]
#[derive(StableAbi)]
pub struct HostContext {
    /// The module's name.
    pub module: RString,
    /// Which build of the module this is (1 for the first load).
    pub generation: u64,
    /// The module's `[modules.<name>]` table as JSON text (`{}` if absent).
    pub config: RString,
    /// Lines above this level are dropped before they are formatted.
    pub log_level: LogLevel,
    /// Where the module's messages go.
    pub sink: HostSinkBox,
    /// Calls, events and shutdown arrive here.
    pub inbox: RReceiver<ToModule>,
}
