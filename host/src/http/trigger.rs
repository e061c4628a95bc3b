//! `POST /trigger/`: publish to rooms over HTTP (high-templar 2.x's body,
//! authenticated this time).

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::state::AppState;

use super::auth::bearer;
use crate::util::secret::ct_eq;

#[derive(Deserialize)]
struct TriggerBody<'a> {
    rooms: Option<serde_json::Value>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

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
    let parsed: TriggerBody<'_> = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "invalid JSON"),
    };
    let Some(rooms) = parsed.rooms.filter(|r| r.is_array()) else {
        return plain(StatusCode::BAD_REQUEST, "rooms not specified");
    };
    let Some(data) = parsed.data else {
        return plain(StatusCode::BAD_REQUEST, "data not specified");
    };
    let rooms = match AppState::parse_rooms(&rooms) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let delivered = state.publish(&rooms, data);
    Json(serde_json::json!({ "delivered": delivered })).into_response()
}
