//! The checks a call passes before a module sees it: the command exists, the
//! caller holds its role, and the params are a small enough object with
//! every required key.
//!
//! It lives here, not in the host, so the host's broker and the testkit run
//! the very same function: a module tested in-process gets the refusals it
//! would get behind the real host. It does no I/O and keeps no state.

use std::{borrow::Cow, collections::HashMap};

use serde::de::IgnoredAny;

use super::message::Failure;
use crate::types::{Caller, CallerKind, CommandSpec, ErrorCode, Manifest};

/// The host's default `limits.max_params_bytes`: serialized params of one
/// call. The testkit uses it too, so a test sees the host's default limit.
pub const DEFAULT_MAX_PARAMS_BYTES: usize = 64 * 1024;

/// Checks a call of `command` with `params` (JSON text) by `caller` against
/// `manifest`, and returns the command's spec.
///
/// The checks run in a fixed order (command, role, size, object, required
/// keys) so a caller always learns about the most basic problem first.
/// Operator callers pass every role check: the host stamped them after
/// checking the admin token. A module caller is held to the roles it
/// carries: those of the user whose call it is handling (the host stamps
/// them), none when it acts on its own behalf. Otherwise a module that
/// relays calls would hand any user every admin-only command.
pub fn check_call<'m>(
    manifest: &'m Manifest,
    command: &str,
    params: &str,
    caller: &Caller,
    max_params_bytes: usize,
) -> Result<&'m CommandSpec, Failure> {
    let spec = manifest.find(command).ok_or_else(|| {
        Failure::new(
            ErrorCode::UnknownCommand,
            format!("module {} has no command {command:?}", manifest.name),
        )
    })?;
    let role = spec.min_role.as_str();
    let allowed = role.is_empty()
        || caller.kind == CallerKind::Operator
        || caller.has_role(role)
        || caller.has_role("admin");
    if !allowed {
        return Err(Failure::new(
            ErrorCode::Forbidden,
            format!("{}.{} needs the role {role:?}", manifest.name, spec.name),
        ));
    }
    if params.len() > max_params_bytes {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!(
                "params are {} bytes; the limit is {max_params_bytes}",
                params.len()
            ),
        ));
    }
    if !params.trim_start().starts_with('{') {
        return Err(Failure::new(
            ErrorCode::MissingParam,
            "params must be a JSON object",
        ));
    }
    if let Some(missing) = missing_param(spec, params)? {
        return Err(Failure::new(
            ErrorCode::MissingParam,
            format!(
                "{}.{} needs the param {missing:?}",
                manifest.name, spec.name
            ),
        ));
    }
    Ok(spec)
}

/// The first required param of `spec` that `params` lacks.
///
/// Only the keys are read (`IgnoredAny` skips the values), and keys are
/// unescaped, so `"n\u006fte"` counts as `note` just as the module will see
/// it after parsing.
fn missing_param<'s>(spec: &'s CommandSpec, params: &str) -> Result<Option<&'s str>, Failure> {
    if spec.params.is_empty() {
        return Ok(None);
    }
    let keys: HashMap<Cow<'_, str>, IgnoredAny> = serde_json::from_str(params).map_err(|e| {
        Failure::new(
            ErrorCode::MissingParam,
            format!("params are not a valid JSON object: {e}"),
        )
    })?;
    Ok(spec
        .params
        .iter()
        .map(|p| p.as_str())
        .find(|p| !keys.contains_key(*p)))
}

#[cfg(test)]
mod tests;
