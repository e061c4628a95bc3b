//! `GET|POST /admin/login` and `POST /admin/logout`.
//!
//! A login is the `[admin] token`, or an account's name and password with
//! the `admin` role. The account is checked by the accounts service
//! itself (`Accounts::login`: its per-address and per-name failure
//! limits, its uniform refusals, its audit entries); a wrong token counts
//! against this page's own per-address limit. Success sets the session
//! cookie: random, `HttpOnly`, `SameSite=Strict`, `Path=/admin`, and
//! `Secure` when the host serves TLS. The login form is checked for its
//! `Origin` too, so no other site can log a browser in as someone else.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Extension,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};

use super::{
    AdminPages,
    audit::audit,
    form::{Post, read_form},
    guard::{self, COOKIE},
    html,
    sessions::{Login, PageSession, SESSION_TTL},
};
use crate::{accounts::LoginError, auth::ADMIN_ROLE, state::AppState};

const FORM: &str = r#"<h1>Log in</h1>
<form method="post" action="/admin/login" id="login">
<fieldset><legend>With the admin token</legend>
<label>Token <input type="password" name="token" autocomplete="off"></label></fieldset>
<fieldset><legend>Or with an admin account</legend>
<label>User <input type="text" name="username" autocomplete="username"></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label></fieldset>
<button type="submit">Log in</button></form>"#;

fn form_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!(r#"<p class="error" role="alert">{}</p>"#, html::esc(p)))
        .unwrap_or_default();
    html::respond(
        status,
        html::page("Log in", None, None, &format!("{problem}{FORM}")),
    )
}

pub(crate) async fn form() -> Response {
    form_page(StatusCode::OK, None)
}

pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    Extension(pages): Extension<Arc<AdminPages>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = guard::same_origin(&state, &headers) {
        return form_page(StatusCode::FORBIDDEN, Some(&e.to_string()));
    }
    let fields = match read_form(&state, &headers, body).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or("");
    let ip = client.ip();
    let login = if !field("token").is_empty() {
        let address = ip.to_string();
        let now = Instant::now();
        if !pages.token_failures.allowed(&address, now) {
            return form_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some("too many failed logins from this address; wait a few minutes"),
            );
        }
        let tokens = state.api_tokens.load();
        if !tokens.is_admin(field("token")) {
            pages.token_failures.failed(&address, now);
            tracing::info!(client = %ip, "admin page: login with a wrong token refused");
            let problem = if tokens.admin_enabled() {
                "wrong admin token"
            } else {
                "this host has no admin token ([admin] token in config.toml): log in with an admin account"
            };
            return form_page(StatusCode::UNAUTHORIZED, Some(problem));
        }
        Login::Token(field("token").to_owned())
    } else {
        match account_login(&state, field("username"), field("password"), ip).await {
            Ok(login) => login,
            Err(response) => return response,
        }
    };
    let (cookie, session) = match pages.sessions.start(login) {
        Ok(started) => started,
        Err(e) => {
            return html::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("no session could be made (the OS gave no randomness: {e}); try again"),
                "/admin/login",
            );
        }
    };
    audit(&state, &session, ip, "admin_login", None, None).await;
    let mut response = html::redirect("/admin/modules");
    set_cookie(&state, &mut response, &cookie, SESSION_TTL.as_secs());
    response
}

/// An account's login: the password checked by the accounts service, then
/// its roles. A non-admin's login session is ended at once.
async fn account_login(
    state: &AppState,
    name: &str,
    password: &str,
    ip: std::net::IpAddr,
) -> Result<Login, Response> {
    let Some(accounts) = state.accounts.clone() else {
        return Err(form_page(
            StatusCode::UNAUTHORIZED,
            Some("this host keeps no accounts: log in with the admin token"),
        ));
    };
    let tokens = match accounts.login(name, password, ip).await {
        Ok(tokens) => tokens,
        Err(LoginError::Refused(_)) => {
            return Err(form_page(
                StatusCode::UNAUTHORIZED,
                Some("wrong user name or password"),
            ));
        }
        Err(LoginError::RateLimited(_)) => {
            return Err(form_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some("too many failed logins; wait a few minutes before trying again"),
            ));
        }
        Err(e @ LoginError::Unavailable(_)) => {
            tracing::error!("admin page: accounts: {e}");
            return Err(form_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("the account store cannot be used now; try again later"),
            ));
        }
    };
    let user = accounts.check_access(&tokens.access_token).ok();
    match user {
        Some(user) if user.roles.iter().any(|r| r == ADMIN_ROLE) => Ok(Login::Account {
            name: user.name,
            session: user.session,
            refresh: tokens.refresh_token,
        }),
        _ => {
            let _ = accounts.logout(&tokens.refresh_token, ip).await;
            tracing::info!(client = %ip, user = %name, "admin page: login of a user without the admin role refused");
            Err(form_page(
                StatusCode::FORBIDDEN,
                Some("this account is not an admin (it lacks the admin role)"),
            ))
        }
    }
}

pub(crate) async fn logout(
    Extension(pages): Extension<Arc<AdminPages>>,
    headers: HeaderMap,
    post: Post,
) -> Response {
    if let Some(cookie) = guard::cookie(&headers) {
        pages.sessions.end(cookie);
    }
    end_account_session(&post.state, &post.session, post.client).await;
    let mut response = post.done("admin_logout", None, None, "/admin/login").await;
    set_cookie(&post.state, &mut response, "", 0);
    response
}

async fn end_account_session(state: &AppState, session: &PageSession, ip: std::net::IpAddr) {
    if let (Login::Account { refresh, .. }, Some(accounts)) = (&session.login, &state.accounts)
        && let Err(e) = accounts.logout(refresh, ip).await
    {
        tracing::info!("admin page: the account's login session had ended already: {e}");
    }
}

/// Sets (or, with `max_age` 0, clears) the session cookie.
fn set_cookie(state: &AppState, response: &mut Response, value: &str, max_age: u64) {
    let secure = if state.config.load().server.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}
