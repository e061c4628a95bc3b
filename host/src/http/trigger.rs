//! `POST /trigger/`: publish to rooms over HTTP (high-templar 2.x's body,
//! authenticated this time). The token is checked before the body is read
//! (`body.rs`); the body is then published by `trigger::message`, which the
//! AMQP source shares.

use std::sync::Arc;

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use crate::{
    state::{AppState, PublishError},
    trigger::message,
};

use super::{auth::bearer, body};

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

pub(super) async fn trigger(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let config = state.config.load();
    let tokens = state.api_tokens.load();
    let authorized = bearer(&headers).is_some_and(|t| tokens.is_trigger(t));
    // Before a byte of the body is read: see `body.rs`.
    if !authorized {
        return plain(StatusCode::UNAUTHORIZED, "missing or unknown trigger token");
    }
    let limit = config
        .limits
        .max_frame_bytes
        .max(crate::protocol::MAX_PUBLISH_BYTES);
    let body = match body::read(body, &headers, limit, config.server.body_timeout).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    match message::publish(&state, &body) {
        Ok(delivered) => Json(serde_json::json!({ "delivered": delivered })).into_response(),
        // Too many rooms is a size limit, like the body's own (413).
        Err(e @ message::MessageError::Room(PublishError::TooManyRooms { .. })) => {
            (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
