//! The page's actions, each a form post answered with a redirect back to
//! its view: reset, disable or enable a module, stop a job, disconnect a
//! session. Each is
//! checked (`form::Post`: session, same origin, CSRF token) before
//! anything is done, and written to the audit log (`audit`).

use axum::{extract::Path, http::StatusCode, response::Response};

use super::{form::Post, html};
use crate::{
    http::admin,
    modules::ToggleError,
    sessions::{session_id, session_name},
};

/// `POST /admin/modules/{name}/reset`.
pub(crate) async fn reset_module(Path(name): Path<String>, post: Post) -> Response {
    let outcome = match admin::reset(&post.state, &name).await {
        Ok(done) => Ok(format!("generation {}", done["generation"])),
        Err(e) => Err((e.status(), e.message().to_owned())),
    };
    post.answer("module_reset", &name, outcome, "/admin/modules")
        .await
}

/// `POST /admin/modules/{name}/disable` and `/enable`: the module switched
/// off or on at runtime (`Registry::disable`; kept across restarts).
pub(crate) async fn toggle_module(
    Path((name, switch)): Path<(String, String)>,
    post: Post,
) -> Response {
    let back = "/admin/modules";
    let enable = match switch.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return html::error(StatusCode::NOT_FOUND, "no such action", back),
    };
    let registry = post.state.registry.clone();
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
    let outcome = match done {
        Ok(outcome) => outcome.map_err(|e| {
            let status = match e {
                ToggleError::Unknown(_) => StatusCode::NOT_FOUND,
                ToggleError::NotDisabled(_) | ToggleError::DisabledInConfig(_) => {
                    StatusCode::CONFLICT
                }
                ToggleError::NotLoaded { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (status, e.to_string())
        }),
        Err(e) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the {switch} did not complete: {e}"),
        )),
    };
    post.answer(action, &name, outcome, back).await
}

/// `POST /admin/jobs/{id}/stop`: `jobs.stop` through the broker, as the
/// operator (who may stop any job).
pub(crate) async fn stop_job(Path(job): Path<String>, post: Post) -> Response {
    let params = serde_json::json!({ "job_id": job }).to_string();
    let stopped =
        admin::operator_call(&post.state, crate::jobs::MODULE, "stop", Some(&params)).await;
    let outcome = stopped
        .map(|answer| format!("status {}", answer["result"]["status"]))
        .map_err(|e| (e.status(), e.message().to_owned()));
    post.answer("job_stop", &job, outcome, "/admin/jobs").await
}

/// `POST /admin/sessions/{session}/disconnect`: an open session is closed
/// with 4003 `disconnected by an operator`; a parked one is forgotten (it
/// cannot be resumed).
pub(crate) async fn disconnect(Path(name): Path<String>, post: Post) -> Response {
    let back = "/admin/connections";
    let state = &post.state;
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
    post.done("session_disconnect", Some(&subject), Some(&detail), back)
        .await
}
