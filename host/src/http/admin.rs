//! The admin API (`Authorization: Bearer <[admin] token>`).

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::{
    broker::{CallRequest, Dispatched},
    external::External,
    modules::{CallFailure, CallSink, ModuleInfo, ResetError},
    state::AppState,
    util::sync::lock,
};

use super::{ConfigStatus, auth::bearer, error::ApiError};

pub(super) fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let tokens = state.api_tokens.load();
    if !tokens.admin_enabled() {
        return Err(ApiError::unauthorized(
            "the admin API is disabled: set [admin] token in config.toml",
        ));
    }
    match bearer(headers) {
        Some(token) if tokens.is_admin(token) => Ok(()),
        _ => Err(ApiError::unauthorized(
            "missing or wrong admin token (Authorization: Bearer <token>)",
        )),
    }
}

/// `GET /api/modules`: in-process modules (kind `in-process`), then
/// external ones (kind `external`; the server layers their table on the
/// router as an `Extension`).
pub(super) async fn modules(
    State(state): State<Arc<AppState>>,
    external: Option<Extension<Arc<External>>>,
    headers: HeaderMap,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    require_admin(&state, &headers)?;
    Ok(Json(module_rows(&state, external.map(|Extension(e)| e))))
}

/// The rows of `GET /api/modules` (also the admin page's modules view).
pub(super) fn module_rows(
    state: &AppState,
    external: Option<Arc<External>>,
) -> Vec<serde_json::Value> {
    let kind = |mut row: serde_json::Value, kind: &str| {
        row["kind"] = kind.into();
        row
    };
    state
        .registry
        .list()
        .into_iter()
        .map(|m: ModuleInfo| kind(serde_json::to_value(m).unwrap_or_default(), "in-process"))
        .chain(
            external
                .map(|e| e.list())
                .unwrap_or_default()
                .into_iter()
                .map(|m| serde_json::to_value(m).unwrap_or_default()),
        )
        .collect()
}

/// `POST /api/modules/{name}/reset`: a fresh instance of the module from
/// the build it runs (for a degraded or failed module; the old instance is
/// drained, or left behind if it is stuck).
pub(super) async fn reset_module(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    reset(&state, &name).await.map(Json)
}

/// Resets module `name` (`{"module","generation","state"}`); shared with
/// the admin page.
pub(super) async fn reset(state: &AppState, name: &str) -> Result<serde_json::Value, ApiError> {
    let registry = state.registry.clone();
    let module = name.to_owned();
    // Starting an instance blocks (it waits for `on_load`).
    let outcome = tokio::task::spawn_blocking(move || registry.reset(&module))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reset-failed",
                format!("the reset did not complete: {e}"),
            )
        })?;
    match outcome {
        Ok(generation) => Ok(serde_json::json!({
            "module": name,
            "generation": generation.generation,
            "state": generation.state().as_str(),
        })),
        Err(e @ ResetError::NotLoaded(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-module",
            e.to_string(),
        )),
        Err(e @ ResetError::StartFailed { .. }) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reset-failed",
            e.to_string(),
        )),
    }
}

/// `GET /api/config`: what the config.toml watcher did last (applied
/// changes, the reason a bad edit was kept out, settings waiting for a
/// restart).
pub(super) async fn config_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    status: Option<Extension<ConfigStatus>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let body = match status {
        Some(Extension(status)) => {
            let status = lock(&status).clone();
            serde_json::to_value(status).unwrap_or_default()
        }
        None => serde_json::json!({ "watching": false }),
    };
    Ok(Json(body))
}

pub(super) async fn connections(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    Ok(Json(
        serde_json::to_value(state.sessions.list()).unwrap_or_default(),
    ))
}

pub(super) async fn rooms(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let rooms: Vec<serde_json::Value> = state
        .fanout
        .rooms()
        .into_iter()
        .map(|(room, subscribers)| serde_json::json!({ "room": room, "subscribers": subscribers }))
        .collect();
    Ok(Json(serde_json::Value::Array(rooms)))
}

/// Room in a `/api/call` body for what surrounds the params (module and
/// command names, keys, whitespace): the params themselves are bounded by
/// `[limits] max_params_bytes`, which the broker enforces with its own
/// `too-large` answer.
const CALL_ENVELOPE_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CallBody {
    module: String,
    command: String,
    #[serde(default)]
    params: Option<Box<serde_json::value::RawValue>>,
}

/// Collects a call's answer for an HTTP response; stream items are
/// gathered into an array.
struct HttpSink {
    items: Vec<String>,
    tx: oneshot::Sender<Result<String, CallFailure>>,
}

impl CallSink for HttpSink {
    fn item(&mut self, result: &str) {
        if self.items.len() < 10_000 {
            self.items.push(result.to_owned());
        }
    }

    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let HttpSink { mut items, tx } = *self;
        let outcome = outcome.map(|last| {
            if items.is_empty() {
                last.to_owned()
            } else {
                items.push(last.to_owned());
                format!("[{}]", items.join(","))
            }
        });
        let _ = tx.send(outcome);
    }
}

pub(super) async fn call(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Before a byte of the body is read: see `body.rs`.
    require_admin(&state, &headers)?;
    let (limit, timeout) = {
        let config = state.config.load();
        (
            config.limits.max_params_bytes + CALL_ENVELOPE_BYTES,
            config.server.body_timeout,
        )
    };
    let body = super::body::read(body, &headers, limit, timeout).await?;
    let body: CallBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"module\",\"command\",\"params\"}}: {e}"
        ))
    })?;
    let params = body.params.as_deref().map(|p| p.get());
    let result = operator_call(&state, &body.module, &body.command, params).await?;
    Ok(Json(result))
}

/// A call as the operator (admin rights, through the broker): `{"result"}`,
/// or `{"result": null, "ack": true}` for a command that sends no reply.
/// Shared with the admin page (jobs).
pub(super) async fn operator_call(
    state: &AppState,
    module: &str,
    command: &str,
    params: Option<&str>,
) -> Result<serde_json::Value, ApiError> {
    let (tx, rx) = oneshot::channel();
    let req = CallRequest::by_operator(module, command, params);
    let sink = HttpSink {
        items: Vec::new(),
        tx,
    };
    // A refused call's failure arrives through `rx` like any other answer.
    let dispatched = state.broker.call(req, |_| Box::new(sink));
    if let Dispatched::Accepted(info) = dispatched
        && !info.needs_reply
    {
        return Ok(serde_json::json!({ "result": null, "ack": true }));
    }
    let text = rx.await.map_err(|_| {
        ApiError::from(CallFailure::new(
            modhost_plugin_api::ErrorCode::ModuleUnavailable,
            "the call was dropped",
        ))
    })??;
    let result: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Ok(serde_json::json!({ "result": result }))
}
