//! The page's actions, each a form post answered with a redirect back to
//! its view: reset, disable or enable a module, stop a job, disconnect a
//! session. Each is
//! checked (`form::checked`: session, same origin, CSRF token) before
//! anything is done, and written to the audit log (`audit`).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Extension,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};

use super::{AdminPages, audit::audit, form::checked, html};
use crate::{
    http::admin,
    modules::ToggleError,
    sessions::{session_id, session_name},
    state::AppState,
};

/// `POST /admin/modules/{name}/reset`.
pub(crate) async fn reset_module(
    State(state): State<Arc<AppState>>,
    Extension(pages): Extension<Arc<AdminPages>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let session = match checked(&state, &pages, &headers, body).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let back = "/admin/modules";
    match admin::reset(&state, &name).await {
        Ok(done) => {
            let detail = format!("generation {}", done["generation"]);
            let ip = client.ip();
            audit(
                &state,
                &session,
                ip,
                "module_reset",
                Some(&name),
                Some(&detail),
            )
            .await;
            html::redirect(back)
        }
        Err(e) => {
            let failed = format!("failed: {}", e.message());
            audit(
                &state,
                &session,
                client.ip(),
                "module_reset",
                Some(&name),
                Some(&failed),
            )
            .await;
            html::error(e.status(), e.message(), back)
        }
    }
}

/// `POST /admin/modules/{name}/disable` and `/enable`: the module switched
/// off or on at runtime (`Registry::disable`; kept across restarts).
pub(crate) async fn toggle_module(
    State(state): State<Arc<AppState>>,
    Extension(pages): Extension<Arc<AdminPages>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((name, switch)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let session = match checked(&state, &pages, &headers, body).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let back = "/admin/modules";
    let enable = match switch.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return html::error(StatusCode::NOT_FOUND, "no such action", back),
    };
    let registry = state.registry.clone();
    let module = name.clone();
    // Enabling loads a build, which blocks until its `on_load` returns.
    let done = tokio::task::spawn_blocking(move || {
        if enable {
            registry.enable(&module).map(|g| format!("generation {g}"))
        } else {
            registry.disable(&module).map(|()| "disabled".to_owned())
        }
    })
    .await;
    let action = if enable {
        "module_enable"
    } else {
        "module_disable"
    };
    let ip = client.ip();
    match done {
        Ok(Ok(detail)) => {
            audit(&state, &session, ip, action, Some(&name), Some(&detail)).await;
            html::redirect(back)
        }
        Ok(Err(e)) => {
            let status = match e {
                ToggleError::Unknown(_) => StatusCode::NOT_FOUND,
                ToggleError::NotDisabled(_) | ToggleError::DisabledInConfig(_) => {
                    StatusCode::CONFLICT
                }
                ToggleError::NotLoaded { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let failed = format!("failed: {e}");
            audit(&state, &session, ip, action, Some(&name), Some(&failed)).await;
            html::error(status, &e.to_string(), back)
        }
        Err(e) => html::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the {switch} did not complete: {e}"),
            back,
        ),
    }
}

/// `POST /admin/jobs/{id}/stop`: `jobs.stop` through the broker, as the
/// operator (who may stop any job).
pub(crate) async fn stop_job(
    State(state): State<Arc<AppState>>,
    Extension(pages): Extension<Arc<AdminPages>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let session = match checked(&state, &pages, &headers, body).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let params = serde_json::json!({ "job_id": job }).to_string();
    let stopped = admin::operator_call(&state, crate::jobs::MODULE, "stop", Some(&params)).await;
    let back = "/admin/jobs";
    match stopped {
        Ok(answer) => {
            let detail = format!("status {}", answer["result"]["status"]);
            audit(
                &state,
                &session,
                client.ip(),
                "job_stop",
                Some(&job),
                Some(&detail),
            )
            .await;
            html::redirect(back)
        }
        Err(e) => html::error(e.status(), e.message(), back),
    }
}

/// `POST /admin/sessions/{session}/disconnect`: an open session is closed
/// with 4003 `disconnected by an operator`; a parked one is forgotten (it
/// cannot be resumed).
pub(crate) async fn disconnect(
    State(state): State<Arc<AppState>>,
    Extension(pages): Extension<Arc<AdminPages>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let session = match checked(&state, &pages, &headers, body).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let back = "/admin/connections";
    let found = session_id(&name).and_then(|id| Some((id, state.sessions.disconnect(id)?)));
    let Some((id, user)) = found else {
        return html::error(
            StatusCode::NOT_FOUND,
            &format!("there is no session {name:?} (it may have ended already)"),
            back,
        );
    };
    // A parked session has no socket to close: forget it like a revoked one.
    for (token, parked, _) in state.sessions.parked.of_user(&user) {
        if parked == id && state.sessions.parked.expire(&token, id).is_some() {
            state.fanout.remove_session(id);
            state.sessions.remove(id);
        }
    }
    let detail = format!("user {user}");
    let subject = session_name(id);
    audit(
        &state,
        &session,
        client.ip(),
        "session_disconnect",
        Some(&subject),
        Some(&detail),
    )
    .await;
    html::redirect(back)
}
