//! `/admin/`: the operators' web page, served by the host with its assets
//! embedded in the binary.
//!
//! Server-rendered HTML plus one small script of our own, plain JS rather
//! than a vendored library (htmx would do): the script only keeps the
//! current view live (swapping in the HTML the host sends, keeping the
//! scroll), which takes about fifty lines, and there is nothing
//! third-party to pin, audit or update. Every button is a plain HTML form, so each
//! action also works with scripts off.
//!
//! Live updates come over the host's own websocket (`feed`): the script
//! opens `/admin/feed?view=<view>`, and the host sends the view's HTML
//! when the set of modules changes and every 2 s, if it changed. Where
//! the socket cannot be opened (a proxy that does not pass upgrades), the
//! script fetches the view (`?fragment=1`) every 2 s instead.
//!
//! Actions (reset, disable or enable a module, stop a job, disconnect a
//! session) are audited: a `tracing` line with target `modhost::audit`
//! (message `audit: admin page action`) always, and an entry in the
//! account store's audit log when the host keeps accounts.
//!
//! # Layout
//! - `sessions`: page sessions behind the cookie: random, bounded, expiring
//! - `guard`: the cookie, the login re-checked, Origin/Referer and the
//!   CSRF token
//! - `login`: the login form (admin token or admin account), logout
//! - `views`: modules, connections, rooms, jobs and config status as HTML
//! - `feed`: a view's live updates over a websocket
//! - `form`: bounded form bodies, and the checks of every post
//! - `actions`: reset, disable, enable, stop a job, disconnect a session
//! - `audit`: the log line and the account store's audit entry
//! - `html`: escaping, the shell, response headers, embedded assets
//! - this file: [`AdminPages`] and the GET handlers of pages and assets

mod actions;
mod audit;
mod feed;
mod form;
mod guard;
mod html;
mod login;
mod sessions;
mod views;

use std::{
    collections::HashMap,
    sync::{Arc, atomic::AtomicUsize},
    time::Duration,
};

use axum::{
    Extension,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};

pub(crate) use actions::{disconnect, reset_module, stop_job, toggle_module};
pub(crate) use feed::feed;
pub(crate) use login::{form as login_form, login, logout};

use crate::{accounts::FailureLimit, external::External, state::AppState};

use super::ConfigStatus;

/// Wrong admin tokens per client address per window before its token
/// logins are refused for the rest of the window (accounts have their
/// own limits in the accounts service).
const TOKEN_FAILURES: u32 = 10;
const TOKEN_FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Addresses the token failure counter holds at most.
const TOKEN_FAILURE_KEYS: usize = 4096;

/// The page's own state, shared by its routes (an `Extension` layered on
/// the router).
pub(crate) struct AdminPages {
    sessions: sessions::PageSessions,
    token_failures: FailureLimit,
    /// Live feeds open (`feed`).
    feeds: AtomicUsize,
}

impl AdminPages {
    pub(crate) fn new() -> Arc<AdminPages> {
        Arc::new(AdminPages {
            sessions: sessions::PageSessions::default(),
            token_failures: FailureLimit::new(
                TOKEN_FAILURES,
                TOKEN_FAILURE_WINDOW,
                TOKEN_FAILURE_KEYS,
            ),
            feeds: AtomicUsize::new(0),
        })
    }
}

/// `GET /admin` and `/admin/`: the modules view.
pub(super) async fn index() -> Response {
    html::redirect("/admin/modules")
}

/// `GET /admin/{view}`: a whole page, or with `?fragment=1` its contents
/// only (the script's poll). Without a session: a redirect to the login
/// page, or 401 for a poll.
pub(super) async fn view(
    State(state): State<Arc<AppState>>,
    Extension(pages): Extension<Arc<AdminPages>>,
    external: Option<Extension<Arc<External>>>,
    config: Option<Extension<ConfigStatus>>,
    Path(view): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let fragment = query.contains_key("fragment");
    let session = match guard::session(&pages, &state, &headers) {
        Ok(session) => session,
        Err(e) if fragment => return html::respond(StatusCode::UNAUTHORIZED, e.to_string()),
        Err(_) => return html::redirect("/admin/login"),
    };
    let sources = views::Sources {
        external: external.map(|Extension(e)| e),
        config: config.map(|Extension(c)| c),
    };
    let Some(main) = views::render(&view, &state, sources, &session.csrf).await else {
        return html::error(
            StatusCode::NOT_FOUND,
            &format!("there is no view {view:?}"),
            "/admin/",
        );
    };
    if fragment {
        return html::respond(StatusCode::OK, main);
    }
    let title = html::VIEWS
        .iter()
        .find(|(path, _)| *path == view)
        .map_or("Admin", |(_, title)| title);
    html::respond(
        StatusCode::OK,
        html::page(title, Some(&view), Some(&session.csrf), &main),
    )
}

/// `GET /admin/assets/admin.js` and `admin.css` (no session needed: they
/// hold nothing but code).
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "admin.js" => html::asset("text/javascript; charset=utf-8", html::SCRIPT),
        "admin.css" => html::asset("text/css; charset=utf-8", html::STYLE),
        _ => html::error(StatusCode::NOT_FOUND, "no such asset", "/admin/"),
    }
}
