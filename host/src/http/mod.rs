//! HTTP routes: every `.route()` is here.
//!
//! # Layout
//! - `auth`: bearer tokens (admin and trigger), compared in constant time
//! - `body`: request bodies read after the token check, bounded in size and
//!   time
//! - `error`: JSON error responses (`{"error":{"code","message"}}`)
//! - `metrics`: `GET /metrics` (Prometheus text), read from live state,
//!   behind `[metrics] token` when set
//! - `trigger`: `POST /trigger/` (high-templar 2.x publish, authenticated)
//! - `accounts`: `POST /auth/login|refresh|logout` when the host keeps
//!   accounts (JSON bodies only, uniform refusals)
//! - `admin`: `/api/*` (admin token): modules (list, reset), config reload
//!   status, call, connections, rooms
//! - `history`: `GET /api/rooms/history` (admin token), a room's history
//! - `admin_page`: `/admin/`, the operators' web page (login with the admin
//!   token or an admin account, a session cookie, CSRF checks): views of
//!   modules, connections, rooms, jobs and config status; audited actions
//! - this file: the router, `/health`, the config reload status it serves,
//!   and `[external] path` (`external::upgrade`) when `[external] enabled`
//!
//! `server` builds this router, so nothing here imports from `server`.

mod accounts;
mod admin;
mod admin_page;
mod auth;
mod body;
mod error;
mod history;
mod metrics;
mod trigger;

use std::sync::{Arc, Mutex};

use axum::{
    Extension, Json, Router,
    extract::State,
    routing::{get, post},
};

use crate::{config::watch::ReloadStatus, external, gateway, state::AppState};

pub(crate) use body::read as read_body;
pub use error::ApiError;

/// What config.toml reloads did: written by the server's config watcher,
/// read by `GET /api/config` (an `Extension` layered on the router). It is
/// defined here, below `server`, so the router does not import back from
/// the module that builds it.
pub type ConfigStatus = Arc<Mutex<ReloadStatus>>;

/// All routes of the host.
pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/ws/", get(gateway::upgrade))
        .route("/ws", get(gateway::upgrade))
        .route("/trigger/", post(trigger::trigger))
        .route("/trigger", post(trigger::trigger))
        .route("/api/modules", get(admin::modules))
        .route("/api/modules/{name}/reset", post(admin::reset_module))
        .route("/api/config", get(admin::config_status))
        .route("/api/call", post(admin::call))
        .route("/api/connections", get(admin::connections))
        .route("/api/rooms", get(admin::rooms))
        .route("/api/rooms/history", get(history::room_history))
        .route("/admin", get(admin_page::index))
        .route("/admin/", get(admin_page::index))
        .route(
            "/admin/login",
            get(admin_page::login_form).post(admin_page::login),
        )
        .route("/admin/logout", post(admin_page::logout))
        .route("/admin/assets/{file}", get(admin_page::asset))
        .route("/admin/feed", get(admin_page::feed))
        .route("/admin/{view}", get(admin_page::view))
        .route(
            "/admin/modules/{name}/reset",
            post(admin_page::reset_module),
        )
        .route(
            "/admin/modules/{name}/{switch}",
            post(admin_page::toggle_module),
        )
        .route("/admin/jobs/{job}/stop", post(admin_page::stop_job))
        .route(
            "/admin/sessions/{session}/disconnect",
            post(admin_page::disconnect),
        );
    let config = state.config.load();
    // With `[metrics] listen` it is served there only (`metrics_router`).
    if config.metrics.listen.is_none() {
        router = router.route("/metrics", get(metrics::metrics));
    }
    if let Some(path) = &config.diagnostics.ws_echo_path {
        router = router.route(path, get(gateway::echo));
    }
    if config.external.enabled {
        let path = &config.external.path;
        router = router
            .route(path, get(external::upgrade))
            .route(&format!("{path}/key"), get(external::host_key));
    }
    drop(config);
    if state.accounts.is_some() {
        router = router
            .route("/auth/login", post(accounts::login))
            .route("/auth/refresh", post(accounts::refresh))
            .route("/auth/logout", post(accounts::logout));
    }
    // The page's sessions live as long as this router, so one per host.
    router
        .layer(Extension(admin_page::AdminPages::new()))
        .with_state(state)
}

/// The router of the `[metrics] listen` address: `/metrics` alone.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(state)
}

/// `ok` while the host serves; with `[cluster]`, the NATS connection's
/// state too (a host cut off from NATS still serves its own clients, so
/// it is `ok` with `connected: false`).
async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut body = serde_json::json!({ "status": "ok" });
    if let Some(cluster) = state.fanout.cluster() {
        body["cluster"] = cluster;
    }
    Json(body)
}
