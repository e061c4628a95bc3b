//! Data that crosses the module boundary: manifest, caller, error codes.
//!
//! Everything here is `#[repr(C)]` + `StableAbi`, so abi_stable checks its
//! layout when a module is loaded. JSON travels as text (`RString`) so neither
//! side has to agree on a JSON library's in-memory layout.

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

/// What a module is and which commands it serves.
///
/// The broker validates calls against it (required params, minimum role,
/// whether a reply is expected) before they reach the module.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Unique module name; must equal the signed name in the `.sig` envelope.
    pub name: RString,
    /// Module version; must equal the signed version.
    pub version: RString,
    /// One line for operators and the resource offer.
    pub description: RString,
    /// The commands this module serves.
    pub commands: RVec<CommandSpec>,
}

impl Manifest {
    /// A manifest with no commands yet.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: RString::new(),
            commands: RVec::new(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }

    /// Adds a command.
    pub fn command(mut self, command: CommandSpec) -> Self {
        self.commands.push(command);
        self
    }

    /// The command named `name`, if this module serves it.
    pub fn find(&self, name: &str) -> Option<&CommandSpec> {
        self.commands.iter().find(|c| c.name.as_str() == name)
    }
}

/// One command in a [`Manifest`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// Command name, unique within the module.
    pub name: RString,
    /// Names of params that must be present in the call's params object.
    pub params: RVec<RString>,
    /// The caller waits for a result; otherwise the call is acknowledged once
    /// accepted and the module's result is dropped.
    pub needs_reply: bool,
    /// The command emits several replies before its final one.
    pub streams: bool,
    /// Role the caller must hold (`""`: any authenticated caller). The
    /// `admin` role satisfies every requirement.
    pub min_role: RString,
    /// One line for the resource offer.
    pub description: RString,
}

impl CommandSpec {
    /// A command that replies once, open to any authenticated caller.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            params: RVec::new(),
            needs_reply: true,
            streams: false,
            min_role: RString::new(),
            description: RString::new(),
        }
    }

    /// Requires `param` to be present in the call's params.
    pub fn param(mut self, param: &str) -> Self {
        self.params.push(param.into());
        self
    }

    /// Fire-and-forget: the caller gets an ack, not the result.
    pub fn no_reply(mut self) -> Self {
        self.needs_reply = false;
        self
    }

    /// The command streams replies (see `Host::emit`).
    pub fn streams(mut self) -> Self {
        self.streams = true;
        self
    }

    /// Only callers holding `role` (or `admin`) may call it.
    pub fn min_role(mut self, role: &str) -> Self {
        self.min_role = role.into();
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }
}

/// Who is calling. Stamped by the host; params can never change it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// What kind of party is calling.
    pub kind: CallerKind,
    /// The user's id (empty for the operator; for a module caller, the
    /// user whose call that module was handling, empty if none).
    pub user: RString,
    /// The websocket session id (empty outside a session).
    pub session: RString,
    /// The user's roles (a module caller carries those of the user whose
    /// call it was handling; role checks apply to them).
    pub roles: RVec<RString>,
    /// The calling module's name, for module-to-module calls.
    pub module: RString,
}

impl Caller {
    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.as_str() == role)
    }
}

/// The kind of party behind a [`Caller`].
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerKind {
    /// A user over a websocket session.
    User,
    /// Another module, through its `Host` handle.
    Module,
    /// The operator, through the admin HTTP API.
    Operator,
}

/// Error codes a call can end with, as the client protocol spells them.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No module of that name is loaded.
    UnknownModule,
    /// The module does not serve that command.
    UnknownCommand,
    /// A required param is missing (or params are not an object).
    MissingParam,
    /// The caller lacks the command's role.
    Forbidden,
    /// The module reported an error.
    ModuleError,
    /// The module panicked while handling the call; it was restarted.
    ModulePanicked,
    /// The module did not answer in time.
    ModuleTimeout,
    /// The module is not accepting calls (queue full, degraded, stopping).
    ModuleUnavailable,
    /// The caller sends calls faster than allowed.
    RateLimited,
    /// The call or its params exceed a size limit.
    TooLarge,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::UnknownModule,
        ErrorCode::UnknownCommand,
        ErrorCode::MissingParam,
        ErrorCode::Forbidden,
        ErrorCode::ModuleError,
        ErrorCode::ModulePanicked,
        ErrorCode::ModuleTimeout,
        ErrorCode::ModuleUnavailable,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
    ];

    /// The wire spelling, e.g. `"module-panicked"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownModule => "unknown-module",
            ErrorCode::UnknownCommand => "unknown-command",
            ErrorCode::MissingParam => "missing-param",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ModuleError => "module-error",
            ErrorCode::ModulePanicked => "module-panicked",
            ErrorCode::ModuleTimeout => "module-timeout",
            ErrorCode::ModuleUnavailable => "module-unavailable",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::TooLarge => "too-large",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity of a module's log line; mapped onto the host's `tracing` levels.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Failures the operator must act on.
    Error = 1,
    /// Something unexpected that the module handled.
    Warn = 2,
    /// Normal operation.
    Info = 3,
    /// Detail for debugging.
    Debug = 4,
    /// Very verbose detail.
    Trace = 5,
}
