//! A call as the broker receives it, and the host's stamp of who makes it.
//!
//! The caller a module sees is built here and only here, from what the host
//! knows (the session's authenticated principal, the calling module's own
//! name, the admin token), never from anything the call carries.

use modhost_plugin_api::{Caller, CallerKind};

use crate::auth::Principal;

/// A call as the broker receives it.
pub struct CallRequest<'a> {
    /// Target module.
    pub module: &'a str,
    /// Target command.
    pub command: &'a str,
    /// Params as JSON text (`None`: `{}`).
    pub params: Option<&'a str>,
    /// Who is calling (stamped by the host, never taken from params).
    pub caller: Caller,
}

impl<'a> CallRequest<'a> {
    /// A call by the user of a websocket session: their roles decide what
    /// they may call.
    pub fn by_user(
        principal: &Principal,
        session: &str,
        module: &'a str,
        command: &'a str,
        params: Option<&'a str>,
    ) -> Self {
        let caller = Caller {
            kind: CallerKind::User,
            user: principal.user.as_str().into(),
            session: session.into(),
            roles: principal.roles.iter().map(|r| r.as_str().into()).collect(),
            module: "".into(),
        };
        Self {
            module,
            command,
            params,
            caller,
        }
    }

    /// A call by module `from` through its `Host` handle. Modules pass role
    /// checks: they are signed code the operator installed.
    pub fn by_module(from: &str, module: &'a str, command: &'a str, params: &'a str) -> Self {
        let caller = Caller {
            kind: CallerKind::Module,
            user: "".into(),
            session: "".into(),
            roles: Default::default(),
            module: from.into(),
        };
        Self {
            module,
            command,
            params: Some(params),
            caller,
        }
    }

    /// A call by the operator through the admin API (which checked the
    /// admin token): stamped with the `admin` role.
    pub fn by_operator(module: &'a str, command: &'a str, params: Option<&'a str>) -> Self {
        let caller = Caller {
            kind: CallerKind::Operator,
            user: "".into(),
            session: "".into(),
            roles: vec!["admin".into()].into(),
            module: "".into(),
        };
        Self {
            module,
            command,
            params,
            caller,
        }
    }
}
