//! `GET /module` (`[external] path`) and `GET /module/key`.
//!
//! sse-platform's client upgrades with a GET that carries a JSON body
//! (`{"type":"module_socket_connect","module":"<name>"}`, with
//! `Content-Length`). Its bytes must never reach the websocket frame
//! parser. Left unread, hyper 1.x drains such a body itself before it hands
//! the socket over (a test without this read still passed), but it reads
//! whatever `Content-Length` says, with no limit in size or time. So the
//! body is read here first, bounded by `[external] max_body_bytes` (413
//! past it, declared or sent) and `[server] body_timeout_secs` (408), and
//! only its `module` is kept: a claim, checked against every frame's signed
//! origin, never trusted.

use std::sync::Arc;

use axum::{
    Extension,
    body::Body,
    extract::{State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{External, connection, host_key::public_b64};
use crate::{gateway::Slot, http::ApiError, signing::validate_module_name, state::AppState};

/// Read buffer of a module socket: frames are small and a larger one grows
/// it (see `gateway/upgrade.rs`).
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 8 * 1024;

/// The name an upgrade body claims, if it has one.
fn claimed_name(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the upgrade body is not JSON ({e}); send {{\"type\":\"module_socket_connect\",\"module\":\"<name>\"}} or nothing"
        ))
    })?;
    match value.get("module") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => {
            validate_module_name(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(Some(name.clone()))
        }
        Some(_) => Err(ApiError::bad_request(
            "\"module\" in the upgrade body must be a module name",
        )),
    }
}

/// `GET /module`: reads and discards the body, then runs the connection.
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    Extension(external): Extension<Arc<External>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
    body: Body,
) -> Response {
    let config = state.config.load_full();
    let ext = &config.external;
    let body = match crate::http::read_body(
        body,
        &headers,
        ext.max_body_bytes,
        config.server.body_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let claimed = match claimed_name(&body) {
        Ok(claimed) => claimed,
        Err(e) => return e.into_response(),
    };
    drop(body);
    let key = match external.host_key(&config.modules.state_dir) {
        Ok(key) => key,
        Err(e) => {
            tracing::error!("external module refused: {e}");
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    };
    if !state.sessions.try_reserve(config.limits.max_connections) {
        return (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response();
    }
    let slot = Slot(state.clone());
    let max_frame = ext.max_frame_bytes;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(max_frame.max(crate::protocol::MAX_PUBLISH_BYTES) * 4 + WRITE_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_failed_upgrade(|e| tracing::debug!("module websocket upgrade failed: {e}"))
        .on_upgrade(move |socket| connection::run(socket, state, external, claimed, key, slot))
}

/// `GET /module/key`: the host's public key for frames to modules (base64,
/// as a `.pub` line and PyNaCl's `VerifyKey(..., encoder=Base64Encoder)`).
pub async fn host_key(
    State(state): State<Arc<AppState>>,
    Extension(external): Extension<Arc<External>>,
) -> Response {
    let state_dir = state.config.load().modules.state_dir.clone();
    match external.host_key(&state_dir) {
        Ok(key) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            public_b64(&key),
        )
            .into_response(),
        Err(e) => {
            tracing::error!("host key unavailable: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}
