//! Who may use the admin page: the session cookie (its login re-checked
//! on every request), and for every state-changing request the CSRF
//! defence: the `Origin` (or, without one, the `Referer`) must be this
//! host, and the session's CSRF token must come back in the form field
//! `csrf` or the `X-CSRF-Token` header. A cross-site form can send the
//! cookie (not with `SameSite=Strict`, but older browsers ignore it) but
//! can neither read the token nor forge the `Origin`.

use axum::http::{HeaderMap, header};

use super::{
    AdminPages,
    sessions::{Login, PageSession},
};
use crate::{auth::ADMIN_ROLE, state::AppState, util::secret::ct_eq};

/// The cookie's name.
pub(super) const COOKIE: &str = "modhost_admin";
/// The header scripts send the CSRF token in.
pub(super) const CSRF_HEADER: &str = "x-csrf-token";

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    /// No cookie, an unknown or expired one, or its login no longer stands.
    #[error("not logged in (or the session ended): log in at /admin/login")]
    NoSession,
    /// A state-changing request from another site, or without its token.
    #[error("{0}")]
    Forged(&'static str),
}

/// The value of the page's cookie in `headers`.
pub(super) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The session of this request, if its login still stands (the token is
/// still `[admin] token`; the account is enabled, still an admin, and its
/// login session open). A
/// session whose login lapsed is ended.
pub(super) fn session(
    pages: &AdminPages,
    state: &AppState,
    headers: &HeaderMap,
) -> Result<PageSession, Refused> {
    let value = cookie(headers).ok_or(Refused::NoSession)?;
    let session = pages.sessions.get(value).ok_or(Refused::NoSession)?;
    if !still_admin(state, &session.login) {
        pages.sessions.end(value);
        return Err(Refused::NoSession);
    }
    Ok(session)
}

/// Whether `login` is still an admin's. An account is read from the store
/// on the caller's thread (two indexed reads), as `/ws/` does.
pub(super) fn still_admin(state: &AppState, login: &Login) -> bool {
    match login {
        Login::Token(token) => state.api_tokens.load().is_admin(token),
        Login::Account { name, session, .. } => state.accounts.as_ref().is_some_and(|accounts| {
            let store = accounts.store();
            matches!(store.user(name), Ok(Some(user))
                if user.enabled() && user.roles.iter().any(|r| r == ADMIN_ROLE))
                && matches!(store.session_open(session), Ok(true))
        }),
    }
}

/// Whether the request comes from a page of this host: its `Origin`, or
/// its `Referer` when a browser sent no `Origin`, is the scheme and `Host`
/// it was sent to. A request with neither is refused. A host serving TLS
/// itself takes `https` only; one serving plain HTTP also takes `https`
/// for the same `Host`, since a TLS proxy in front of it gives its pages
/// that origin (and nobody else can serve a page under this host's name).
pub(super) fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), Refused> {
    let schemes: &[&str] = if state.config.load().server.tls.is_some() {
        &["https"]
    } else {
        &["http", "https"]
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refused::Forged("the request names no Host"))?;
    let mut ours = Vec::with_capacity(schemes.len());
    for scheme in schemes {
        let origin = url::Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|_| Refused::Forged("the request's Host is not a host name"))?
            .origin()
            .ascii_serialization();
        ours.push(origin);
    }
    let sent = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .ok_or(Refused::Forged(
            "the request has neither Origin nor Referer: send it from the admin page",
        ))?;
    let theirs = url::Url::parse(sent)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    if !ours.contains(&theirs) {
        return Err(Refused::Forged(
            "the request comes from another site (Origin/Referer is not this host)",
        ));
    }
    Ok(())
}

/// Whether the CSRF token `form` (the form field), or else the
/// `X-CSRF-Token` header, is `session`'s.
pub(super) fn csrf(
    session: &PageSession,
    headers: &HeaderMap,
    form: Option<&str>,
) -> Result<(), Refused> {
    let sent = form.or_else(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()));
    match sent {
        Some(token) if ct_eq(token.as_bytes(), session.csrf.as_bytes()) => Ok(()),
        _ => Err(Refused::Forged(
            "missing or wrong CSRF token: reload the admin page and try again",
        )),
    }
}
