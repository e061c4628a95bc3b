//! A call as the broker receives it, and the host's stamp of who makes it.
//!
//! The caller a module sees is built here and only here, from what the host
//! knows (the session's authenticated principal, the calling module's own
//! name and the call it is handling, the admin token), never from anything
//! the call carries.
//!
//! A module calling another carries its own caller along: the callee sees
//! the original user, session and roles, with the calling module's name,
//! and the role checks apply to that user. Modules pass no role check of
//! their own: a module acting on its own behalf (outside any call) has no
//! roles. Otherwise any user could reach an admin-only command through a
//! module that relays calls.

use std::sync::Arc;

use modhost_plugin_api::{
    Caller, CallerKind,
    abi_stable::std_types::{RString, RVec},
};

use crate::{
    auth::Principal,
    modules::{CallContext, UserRights},
    rooms::Room,
};

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
    /// What the module may do for the user behind the call; `None` for
    /// the operator and for modules on their own behalf.
    pub user: Option<UserRights>,
}

impl<'a> CallRequest<'a> {
    /// A call by the user of a websocket session: their roles decide what
    /// they may call, and their `allowed_rooms` where the module may
    /// publish for them.
    pub fn by_user(
        principal: &Principal,
        allowed_rooms: Arc<[Room]>,
        session: &str,
        module: &'a str,
        command: &'a str,
        params: Option<&'a str>,
    ) -> Self {
        let roles = principal.roles.iter().map(|r| r.as_str().into()).collect();
        let mut req = Self::stamped(
            module,
            command,
            params,
            caller(CallerKind::User, &principal.user, session, roles, ""),
        );
        req.user = Some(UserRights { allowed_rooms });
        req
    }

    /// A call by module `from` through its `Host` handle, made while it
    /// handles `on_behalf` (`None`: on its own behalf). The callee sees
    /// `from` as the calling module and the original caller's user,
    /// session and roles, which decide what it may call; an own-behalf
    /// call has no roles, so it reaches only commands without `min_role`.
    pub fn by_module(
        from: &str,
        on_behalf: Option<&CallContext>,
        module: &'a str,
        command: &'a str,
        params: &'a str,
    ) -> Self {
        let Some(context) = on_behalf else {
            let caller = caller(CallerKind::Module, "", "", Default::default(), from);
            return Self::stamped(module, command, Some(params), caller);
        };
        let original = &context.caller;
        let caller = caller(
            CallerKind::Module,
            &original.user,
            &original.session,
            original.roles.clone(),
            from,
        );
        let mut req = Self::stamped(module, command, Some(params), caller);
        req.user = context.user.clone();
        req
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
            user: None,
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
