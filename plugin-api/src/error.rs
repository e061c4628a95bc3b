//! [`ModuleError`]: what a handler returns when a call fails, and what the
//! `Host` handle's methods return when the host refuses something.

use crate::{abi::Failure, types::ErrorCode};

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
        Failure::new(self.code, self.message)
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
