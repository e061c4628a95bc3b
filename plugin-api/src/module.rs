//! The author's side: the [`Module`] trait, the [`Call`] a handler gets, and
//! [`ModuleError`].

use abi_stable::std_types::RString;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    host::Host,
    message::{CallMsg, Failure},
    types::{Caller, ErrorCode, Manifest},
};

/// A module: a manifest, a constructor, and a handler.
///
/// An instance lives on a thread of its own and handles one message at a
/// time, so `&mut self` needs no locking. If a handler panics, the call is
/// answered with `module-panicked`, the instance is dropped and a new one is
/// built with [`Module::on_load`].
pub trait Module: Sized + Send + 'static {
    /// Name, version and commands. Called once per load.
    fn manifest() -> Manifest;

    /// Builds an instance. An `Err` (or a panic) refuses this build of the
    /// module; a previous build, if any, keeps serving.
    fn on_load(host: &Host) -> Result<Self, String>;

    /// Handles one call. Required params were checked by the host. Return
    /// the result (for a streaming command, the last item; see
    /// [`Host::emit`]).
    fn handle(&mut self, call: &Call, host: &Host) -> Result<Value, ModuleError>;

    /// An event (for example a user logging out). Ignored by default.
    fn on_event(&mut self, name: &str, data: &Value, host: &Host) {
        let _ = (name, data, host);
    }

    /// The module's config table changed (`host.config()` has the new one).
    /// By default the instance is rebuilt with [`Module::on_load`].
    fn on_config(&mut self, host: &Host) -> Result<(), String> {
        *self = Self::on_load(host)?;
        Ok(())
    }

    /// The module is being replaced or removed. In-flight calls have been
    /// answered; nothing more will arrive.
    fn on_unload(&mut self, host: &Host) {
        let _ = host;
    }
}

/// One call, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Host-assigned id (used by [`Host::emit`]).
    pub id: u64,
    /// The command name.
    pub command: String,
    /// The params object.
    pub params: Value,
    /// Who is calling, stamped by the host.
    pub caller: Caller,
}

impl Call {
    pub(crate) fn from_msg(msg: CallMsg) -> Result<Self, ModuleError> {
        let params = serde_json::from_str(msg.params.as_str())
            .map_err(|e| ModuleError::bad_params(format!("params are not valid JSON: {e}")))?;
        Ok(Self {
            id: msg.id,
            command: msg.command.into_string(),
            params,
            caller: msg.caller,
        })
    }

    /// The param `name` converted to `T`, or a `missing-param` error that
    /// names it.
    pub fn param<T: DeserializeOwned>(&self, name: &str) -> Result<T, ModuleError> {
        let value = self
            .params
            .get(name)
            .ok_or_else(|| ModuleError::bad_params(format!("param `{name}` is missing")))?;
        T::deserialize(value)
            .map_err(|e| ModuleError::bad_params(format!("param `{name}` is invalid: {e}")))
    }

    /// The calling user's id, stamped by the host (empty for calls from
    /// modules and the operator).
    pub fn user(&self) -> &str {
        self.caller.user.as_str()
    }
}

/// A handler's error; becomes `{"type":"error","code",...,"message"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleError {
    /// The error code (usually `module-error`).
    pub code: ErrorCode,
    /// What went wrong, for the caller.
    pub message: String,
}

impl ModuleError {
    /// A `module-error` with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::ModuleError,
            message: message.into(),
        }
    }

    /// A `missing-param` error: the params are unusable.
    pub fn bad_params(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::MissingParam,
            message: message.into(),
        }
    }

    /// A `forbidden` error: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Forbidden,
            message: message.into(),
        }
    }

    pub(crate) fn into_failure(self) -> Failure {
        Failure {
            code: self.code,
            message: RString::from(self.message),
        }
    }
}

impl std::fmt::Display for ModuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ModuleError {}

impl From<String> for ModuleError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ModuleError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<Failure> for ModuleError {
    fn from(failure: Failure) -> Self {
        Self {
            code: failure.code,
            message: failure.message.into_string(),
        }
    }
}
