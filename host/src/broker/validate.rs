//! Manifest checks the broker runs before a module sees a call.

use std::{borrow::Cow, collections::HashMap};

use modhost_plugin_api::{CallerKind, ErrorCode, Manifest};
use serde::de::IgnoredAny;

use super::CallRequest;
use crate::modules::CallFailure;

/// What the broker learned about the called command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandInfo {
    /// The caller waits for a result (otherwise it gets an ack).
    pub needs_reply: bool,
    /// The result comes as several replies.
    pub streams: bool,
}

pub(super) fn check(
    manifest: &Manifest,
    req: &CallRequest<'_>,
    max_params: usize,
) -> Result<CommandInfo, CallFailure> {
    let spec = manifest.find(req.command).ok_or_else(|| {
        CallFailure::new(
            ErrorCode::UnknownCommand,
            format!("module {} has no command {:?}", manifest.name, req.command),
        )
    })?;
    let role = spec.min_role.as_str();
    let allowed = role.is_empty()
        || matches!(req.caller.kind, CallerKind::Module | CallerKind::Operator)
        || req.caller.has_role(role)
        || req.caller.has_role("admin");
    if !allowed {
        return Err(CallFailure::new(
            ErrorCode::Forbidden,
            format!("{}.{} needs the role {role:?}", manifest.name, spec.name),
        ));
    }
    let params = req.params.unwrap_or("{}");
    if params.len() > max_params {
        return Err(CallFailure::new(
            ErrorCode::TooLarge,
            format!(
                "params are {} bytes; the limit is {max_params}",
                params.len()
            ),
        ));
    }
    if !params.trim_start().starts_with('{') {
        return Err(CallFailure::new(
            ErrorCode::MissingParam,
            "params must be a JSON object",
        ));
    }
    if !spec.params.is_empty() {
        let keys: HashMap<Cow<'_, str>, IgnoredAny> =
            serde_json::from_str(params).map_err(|e| {
                CallFailure::new(
                    ErrorCode::MissingParam,
                    format!("params are not a valid JSON object: {e}"),
                )
            })?;
        if let Some(missing) = spec.params.iter().find(|p| !keys.contains_key(p.as_str())) {
            return Err(CallFailure::new(
                ErrorCode::MissingParam,
                format!(
                    "{}.{} needs the param {:?}",
                    manifest.name,
                    spec.name,
                    missing.as_str()
                ),
            ));
        }
    }
    Ok(CommandInfo {
        needs_reply: spec.needs_reply,
        streams: spec.streams,
    })
}

#[cfg(test)]
mod tests {
    use modhost_plugin_api::{Caller, CommandSpec};

    use super::*;

    fn manifest() -> Manifest {
        Manifest::new("notes", "1.0.0")
            .command(CommandSpec::new("write_note").param("note"))
            .command(CommandSpec::new("purge").min_role("admin"))
            .command(CommandSpec::new("fire").no_reply())
    }

    fn user(roles: &[&str]) -> Caller {
        Caller {
            kind: CallerKind::User,
            user: "alice".into(),
            session: "s1".into(),
            roles: roles.iter().map(|r| (*r).into()).collect(),
            module: "".into(),
        }
    }

    fn req<'a>(command: &'a str, params: Option<&'a str>, caller: Caller) -> CallRequest<'a> {
        CallRequest {
            module: "notes",
            command,
            params,
            caller,
        }
    }

    fn code(r: Result<CommandInfo, CallFailure>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn checks_command_params_and_role() {
        let m = manifest();
        assert_eq!(
            code(check(&m, &req("nope", None, user(&[])), 1000)),
            ErrorCode::UnknownCommand
        );
        assert_eq!(
            code(check(&m, &req("write_note", None, user(&[])), 1000)),
            ErrorCode::MissingParam
        );
        assert_eq!(
            code(check(&m, &req("write_note", Some("[1]"), user(&[])), 1000)),
            ErrorCode::MissingParam
        );
        assert_eq!(
            code(check(
                &m,
                &req("write_note", Some(r#"{"not":1}"#), user(&[])),
                1000
            )),
            ErrorCode::MissingParam
        );
        assert!(
            check(
                &m,
                &req("write_note", Some(r#"{"note":"x"}"#), user(&[])),
                1000
            )
            .is_ok()
        );
        assert_eq!(
            code(check(
                &m,
                &req("write_note", Some(r#"{"note":"xxxxxxxx"}"#), user(&[])),
                10
            )),
            ErrorCode::TooLarge
        );
        assert_eq!(
            code(check(&m, &req("purge", None, user(&["user"])), 1000)),
            ErrorCode::Forbidden
        );
        assert!(check(&m, &req("purge", None, user(&["admin"])), 1000).is_ok());
        let info = check(&m, &req("fire", None, user(&[])), 1000).unwrap();
        assert!(!info.needs_reply);
    }

    #[test]
    fn escaped_keys_count_as_present() {
        let m = manifest();
        assert!(
            check(
                &m,
                &req("write_note", Some(r#"{"n\u006fte":"x"}"#), user(&[])),
                1000
            )
            .is_ok()
        );
    }
}
