//! `POST /trigger/`: publish to rooms over HTTP (high-templar 2.x's body,
//! authenticated this time). The body is read and published by
//! `trigger::message`, which the AMQP source shares.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use crate::{
    state::{AppState, PublishError},
    trigger::message,
};

use super::auth::bearer;
use crate::util::secret::ct_eq;

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

pub(super) async fn trigger(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = state.config.load();
    let token = bearer(&headers);
    let authorized = token.is_some_and(|t| {
        config
            .trigger
            .tokens
            .iter()
            .any(|k| ct_eq(k.as_bytes(), t.as_bytes()))
    });
    if !authorized {
        return plain(StatusCode::UNAUTHORIZED, "missing or unknown trigger token");
    }
    if body.len()
        > config
            .limits
            .max_frame_bytes
            .max(crate::protocol::MAX_PUBLISH_BYTES)
    {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    }
    match message::publish(&state, &body) {
        Ok(delivered) => Json(serde_json::json!({ "delivered": delivered })).into_response(),
        // Too many rooms is a size limit, like the body's own (413).
        Err(e @ message::MessageError::Room(PublishError::TooManyRooms { .. })) => {
            (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
