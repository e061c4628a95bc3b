//! A call as the broker receives it, and the host's stamp of who makes it.
//!
//! The caller a module sees is built here and only here, from what the host
//! knows (the session's authenticated principal, the calling module's own
//! name, the admin token), never from anything the call carries.

use modhost_plugin_api::{
    Caller, CallerKind,
    abi_stable::std_types::{RString, RVec},
};

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
        let roles = principal.roles.iter().map(|r| r.as_str().into()).collect();
        Self::stamped(
            module,
            command,
            params,
            caller(CallerKind::User, &principal.user, session, roles, ""),
        )
    }

    /// A call by module `from` through its `Host` handle. Modules pass role
    /// checks: they are signed code the operator installed.
    pub fn by_module(from: &str, module: &'a str, command: &'a str, params: &'a str) -> Self {
        let caller = caller(CallerKind::Module, "", "", Default::default(), from);
        Self::stamped(module, command, Some(params), caller)
    }

    /// A call by the operator through the admin API (which checked the
    /// admin token): stamped with the `admin` role.
    pub fn by_operator(module: &'a str, command: &'a str, params: Option<&'a str>) -> Self {
        let caller = caller(
            CallerKind::Operator,
            "",
            "",
            vec!["admin".into()].into(),
            "",
        );
        Self::stamped(module, command, params, caller)
    }

    fn stamped(module: &'a str, command: &'a str, params: Option<&'a str>, caller: Caller) -> Self {
        Self {
            module,
            command,
            params,
            caller,
        }
    }
}

/// The identity stamped on a call; whatever the call's params say about
/// the caller is never read.
fn caller(
    kind: CallerKind,
    user: &str,
    session: &str,
    roles: RVec<RString>,
    module: &str,
) -> Caller {
    Caller {
        kind,
        user: user.into(),
        session: session.into(),
        roles,
        module: module.into(),
    }
}
