//! The typed messages exchanged between the host and a module instance.
//!
//! Host → module travels over a bounded channel the host creates
//! ([`ToModule`]); module → host goes through the host's [`HostSink`]
//! (see `context.rs`), which the host implements so a reply is handed to the
//! waiting caller on the module's own thread, without a relay thread.
//!
//! [`HostSink`]: super::HostSink

use abi_stable::{
    StableAbi,
    std_types::{RResult, RString},
};

use crate::types::{Caller, ErrorCode, LogLevel};

/// A message from the host to a module instance.
#[repr(u8)]
#[derive(StableAbi, Debug)]
pub enum ToModule {
    /// Run a command.
    Call(CallMsg),
    /// Something happened that the module may react to.
    Event(EventMsg),
    /// The answer to a call this module made to another module.
    CallResult(CallResultMsg),
    /// The module's `[modules.<name>]` table changed (JSON text).
    Reconfigure(RString),
    /// Stop: finish, run `on_unload`, return from `run`.
    Shutdown,
}

/// A command call, validated by the broker against the manifest.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct CallMsg {
    /// Host-assigned id; replies and errors carry it back.
    pub id: u64,
    /// The command name (one of the manifest's).
    pub command: RString,
    /// The params object as JSON text.
    pub params: RString,
    /// Who is calling, stamped by the host.
    pub caller: Caller,
}

/// An event (for example `user_logout`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct EventMsg {
    /// Event name.
    pub name: RString,
    /// Event data as JSON text.
    pub data: RString,
}

/// The outcome of a module-to-module call.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct CallResultMsg {
    /// The id the module chose when it made the call.
    pub id: u64,
    /// The result as JSON text, or why the call failed.
    pub outcome: RResult<RString, Failure>,
}

/// Why a call failed: a protocol error code and a message for people.
///
/// Authors never see it: `Host`'s methods turn it into a `ModuleError`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error code.
    pub code: ErrorCode,
    /// What happened, for the caller.
    pub message: RString,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<RString>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A message from a module instance to the host.
#[repr(u8)]
#[derive(StableAbi, Debug)]
pub enum FromModule {
    /// A result for call `id`; `done = false` for a stream item.
    Reply {
        /// The call's id.
        id: u64,
        /// The result as JSON text.
        result: RString,
        /// The last reply for this call.
        done: bool,
    },
    /// Call `id` failed.
    Error {
        /// The call's id.
        id: u64,
        /// Why.
        failure: Failure,
    },
    /// Publish `data` to `rooms` (both JSON text).
    Publish {
        /// JSON array of room objects.
        rooms: RString,
        /// Any JSON value.
        data: RString,
    },
    /// Push `data` (JSON text) to every session of `user`.
    SendToUser {
        /// The user id.
        user: RString,
        /// Any JSON value.
        data: RString,
    },
    /// Call another module; the answer arrives as [`ToModule::CallResult`].
    Call {
        /// Chosen by the calling module; echoed in the result.
        id: u64,
        /// Target module.
        module: RString,
        /// Target command.
        command: RString,
        /// Params object as JSON text.
        params: RString,
    },
    /// A log line for the host's log.
    Log {
        /// Severity.
        level: LogLevel,
        /// The message.
        message: RString,
    },
}
