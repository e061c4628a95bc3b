//! Sessions whose credential stops standing while they are open (issue 15
//! item 6). Each is closed with 4003
//! ([`CLOSE_REVOKED`](crate::protocol::CLOSE_REVOKED)) or, when only its
//! rights shrank or grew, downgraded in place:
//!
//! | what happened | noticed by | the session |
//! |---|---|---|
//! | a static token removed, or now for another user or rooms | the config reload (`config_applied`) | closed, `token revoked` / `token changed` |
//! | a static token's roles changed | the config reload | roles applied, offer sent again |
//! | a JWT, OIDC or account token past its `exp` | its own timer (`session::credential_expiry`) | closed, `token expired` |
//! | an account disabled or deleted | the account watcher ([`recheck_account_user`]) | closed, `user disabled` |
//! | its login session ended (logout, password change, refresh token reuse) | the account watcher | closed, `logged out` |
//! | an account's roles changed | the account watcher | rooms recomputed from `[[auth.roles]]`; subscriptions no longer allowed dropped with `subscription-revoked`; offer sent again |
//!
//! The watcher runs in another task and may see changes made by another
//! process (`modhost user …`): it asks the user's sessions to check again
//! ([`Sessions::recheck_user`](crate::sessions::Sessions::recheck_user),
//! found by the user index), and each session reads the store on its own
//! task, as it did when it authenticated (two indexed reads). Parked
//! sessions of a revoked credential are forgotten at once, so none can be
//! resumed.
//!
//! high-templar's dialect cannot say which subscription ended (its errors
//! carry no `requestId`), so a legacy session that would lose one is
//! closed with 4003 instead and reconnects to its new `allowed_rooms`.

use std::sync::Arc;

use crate::{
    accounts::Accounts,
    auth::{ACCOUNT_PREFIX, Principal, Source},
    cmd::Session,
    rooms::Room,
    state::AppState,
};

/// Why a session's credential no longer stands: the close reason (sent
/// with 4003).
pub(super) type Revoked = &'static str;

/// The config changed: checks a static token's session against it. A
/// removed token ends the session (`token revoked`), and so does a change
/// of its user or rooms (`token changed`: the client connects again under
/// the new terms); changed roles apply at once (calls are checked against
/// the session's roles) and the resource offer is sent again.
pub(super) fn recheck_token(session: &mut Session) -> Option<Revoked> {
    let Source::Static { token_digest } = &session.principal.source else {
        return None;
    };
    let now = session.state.auth.load().static_principal(token_digest);
    let (name, user) = (&session.name, &session.principal.user);
    match now {
        None => {
            tracing::info!(session = %name, user = %user, reason = "token removed", "revoked: closing a session whose token was removed from the config");
            Some("token revoked")
        }
        Some(p) if p.user != *user || !same_rooms(&p.allowed_rooms, &session.allowed) => {
            tracing::info!(session = %name, user = %user, reason = "token changed", "revoked: closing a session whose token now stands for another user or other rooms");
            Some("token changed")
        }
        Some(p) if p.roles != session.principal.roles => {
            tracing::info!(session = %name, user = %user, roles = ?p.roles, "the roles of a session's token changed; applied");
            session.principal.roles = p.roles;
            session.send_resource_offer();
            None
        }
        Some(_) => None,
    }
}

/// Whether the room patterns `patterns` (a token's, from the config)
/// are the ones `allowed` was parsed from: same rooms, same order.
pub(super) fn same_rooms(patterns: &[serde_json::Value], allowed: &[Room]) -> bool {
    patterns.len() == allowed.len()
        && patterns
            .iter()
            .zip(allowed)
            .all(|(pattern, room)| Room::parse(pattern).is_ok_and(|p| p == *room))
}

/// What the store says now of an account's login session.
enum AccountNow {
    /// Still usable, with these roles.
    Roles(Vec<String>),
    /// No longer usable: the close reason.
    Revoked(Revoked),
}

/// Reads user `name` and login session `sid` from the store. A store that
/// cannot be read revokes: the check that let the client in would refuse
/// it now too.
fn account_now(accounts: &Accounts, name: &str, sid: &str) -> AccountNow {
    let store = accounts.store();
    let user = match store.user(name) {
        Ok(Some(user)) if user.enabled() => user,
        Ok(_) => return AccountNow::Revoked("user disabled"),
        Err(e) => {
            tracing::warn!(user = %name, "account store unreadable while rechecking a session: {e}");
            return AccountNow::Revoked("account store unreadable");
        }
    };
    match store.session_open(sid) {
        Ok(true) => AccountNow::Roles(user.roles),
        Ok(false) => AccountNow::Revoked("logged out"),
        Err(e) => {
            tracing::warn!(user = %name, "account store unreadable while rechecking a session: {e}");
            AccountNow::Revoked("account store unreadable")
        }
    }
}

/// The store name of an account principal, and its login session.
fn account_of(principal: &Principal) -> Option<(&str, &str)> {
    let Source::Account { session, .. } = &principal.source else {
        return None;
    };
    let name = principal.user.strip_prefix(ACCOUNT_PREFIX)?;
    Some((name, session))
}

/// The account watcher asked: checks an account's session against the
/// store. Closes it (the reason) when its user is disabled or its login
/// session ended; applies changed roles in place.
pub(super) fn recheck_account(session: &mut Session) -> Option<Revoked> {
    let state = session.state.clone();
    let accounts = state.accounts.as_ref()?;
    let (name, sid) = account_of(&session.principal)?;
    match account_now(accounts, name, sid) {
        AccountNow::Revoked(reason) => {
            tracing::info!(session = %session.name, user = %session.principal.user, reason, "revoked: closing an account's session");
            Some(reason)
        }
        AccountNow::Roles(roles) if roles != session.principal.roles => apply_roles(session, roles),
        AccountNow::Roles(_) => None,
    }
}

/// Gives `session` the rights of `roles`: its rooms recomputed from
/// `[[auth.roles]]`, subscriptions they no longer allow dropped (each
/// told with `subscription-revoked`), the offer sent again. Closes the
/// session instead when its dialect cannot name a dropped subscription.
fn apply_roles(session: &mut Session, roles: Vec<String>) -> Option<Revoked> {
    let user = session.principal.user.clone();
    let patterns = session.state.auth.load().rooms_for_roles(&user, &roles);
    // `[[auth.roles]]` rooms were checked when the config was loaded.
    let allowed: Arc<[Room]> = patterns
        .iter()
        .filter_map(|p| Room::parse(p).ok())
        .collect();
    let dropped = session
        .state
        .fanout
        .retain_session(session.id, &|room| allowed.iter().any(|a| a.permits(room)));
    tracing::info!(
        session = %session.name, user = %user, roles = ?roles, dropped = dropped.len(),
        reason = "roles changed", "an account's roles changed; applied"
    );
    session.principal.roles = roles;
    session.allowed = allowed;
    for request_id in &dropped {
        match session.dialect.subscription_revoked(request_id) {
            Some(frame) => {
                session.outbox.text(frame);
            }
            None => return Some("rights changed"),
        }
    }
    session.send_resource_offer();
    None
}

/// What [`recheck_account_user`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rechecked {
    /// Sessions (open, and parked ones kept) asked to check again.
    pub asked: usize,
    /// Parked sessions forgotten: their credential no longer stands.
    pub parked_dropped: usize,
}

/// Account `name` changed in the store (disabled, roles, a login session
/// ended): forgets its parked sessions whose credential no longer stands,
/// so none is resumed, and asks its other sessions to check again (each
/// closes or downgrades itself within a wake). Reads the store: call it
/// off the async workers.
pub fn recheck_account_user(state: &AppState, name: &str) -> Rechecked {
    let Some(accounts) = state.accounts.as_ref() else {
        return Rechecked::default();
    };
    let user = format!("{ACCOUNT_PREFIX}{name}");
    // Checked outside the parked table's lock: each check reads the store.
    let parked = &state.sessions.parked;
    let dropped: Vec<_> = parked
        .of_user(&user)
        .into_iter()
        .filter(|(_, _, principal)| {
            account_of(principal).is_some_and(|(name, sid)| {
                matches!(account_now(accounts, name, sid), AccountNow::Revoked(_))
            })
        })
        .filter_map(|(token, id, _)| parked.expire(&token, id))
        .collect();
    for parked in &dropped {
        state.fanout.remove_session(parked.id);
        state.sessions.remove(parked.id);
        tracing::info!(
            session = %crate::sessions::session_name(parked.id), user = %user,
            "revoked: a parked session of a disabled or logged-out account is forgotten"
        );
    }
    Rechecked {
        asked: state.sessions.recheck_user(&user),
        parked_dropped: dropped.len(),
    }
}
