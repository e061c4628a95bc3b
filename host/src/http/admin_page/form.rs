//! The bodies of the page's posts: urlencoded forms, bounded, read only
//! after the cookie checked out; and the checks every state-changing
//! request passes before anything is done, as the extractor [`Post`].

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    Extension,
    body::Body,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::{AdminPages, guard, html, sessions::PageSession};
use crate::state::AppState;

/// Largest login or action form: a token, a name and a password, or a
/// CSRF token, fit in a fraction of it.
pub(super) const MAX_FORM_BYTES: usize = 4096;

/// The fields of an urlencoded form body of at most [`MAX_FORM_BYTES`]
/// (the first value of each name).
pub(super) async fn read_form(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<HashMap<String, String>, Response> {
    let timeout = state.config.load().server.body_timeout;
    let bytes = crate::http::read_body(body, headers, MAX_FORM_BYTES, timeout)
        .await
        .map_err(|e| html::error(e.status(), e.message(), "/admin/"))?;
    let mut fields = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(&bytes) {
        fields
            .entry(name.into_owned())
            .or_insert(value.into_owned());
    }
    Ok(fields)
}

/// A state-changing post that passed [`checked`]: what a handler needs
/// to act and audit (`audit::Post::done`). Taken as a handler's last
/// argument, after the path, so nothing is done with a request that
/// fails a check.
pub(crate) struct Post {
    pub(super) state: Arc<AppState>,
    pub(super) session: PageSession,
    /// The client's address, for the audit log.
    pub(super) client: IpAddr,
}

impl FromRequest<Arc<AppState>> for Post {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Post, Response> {
        let (mut parts, body) = req.into_parts();
        let Extension(pages) = Extension::<Arc<AdminPages>>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ConnectInfo(client) = ConnectInfo::<SocketAddr>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let session = checked(state, &pages, &parts.headers, body).await?;
        Ok(Post {
            state: state.clone(),
            session,
            client: client.ip(),
        })
    }
}

/// The session of a state-changing request, once it has passed every
/// check: a live session (else 401), from this host (else 403), with the
/// session's CSRF token in the form field `csrf` or the `X-CSRF-Token`
/// header (else 403). The form is read only after the cookie checked out.
async fn checked(
    state: &AppState,
    pages: &AdminPages,
    headers: &HeaderMap,
    body: Body,
) -> Result<PageSession, Response> {
    let back = "/admin/login";
    let session = guard::session(pages, state, headers)
        .map_err(|e| html::error(StatusCode::UNAUTHORIZED, &e.to_string(), back))?;
    guard::same_origin(state, headers)
        .map_err(|e| html::error(StatusCode::FORBIDDEN, &e.to_string(), "/admin/"))?;
    let form = read_form(state, headers, body).await?;
    guard::csrf(&session, headers, form.get("csrf").map(String::as_str))
        .map_err(|e| html::error(StatusCode::FORBIDDEN, &e.to_string(), "/admin/"))?;
    Ok(session)
}
