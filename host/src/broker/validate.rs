//! Manifest checks the broker runs before a module sees a call.
//!
//! The checks themselves are `plugin-api`'s `check_call`, shared with the
//! testkit so a module's in-process tests meet the same refusals; this file
//! adapts them to the broker's request and error types.

use modhost_plugin_api::{Manifest, abi::check_call};

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
    let params = req.params.unwrap_or("{}");
    let spec = check_call(manifest, req.command, params, &req.caller, max_params)
        .map_err(|f| CallFailure::new(f.code, f.message.into_string()))?;
    Ok(CommandInfo {
        needs_reply: spec.needs_reply,
        streams: spec.streams,
    })
}

#[cfg(test)]
mod tests {
    use modhost_plugin_api::{Caller, CallerKind, CommandSpec, ErrorCode};

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
            user: None,
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
