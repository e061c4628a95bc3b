//! `GET /api/rooms/history?room=<JSON>&limit=<n>` (admin token): a room's
//! history position and its newest publications, for operators.
//!
//! The room is the JSON object a client subscribes with, URL-encoded; it
//! must be concrete (history is kept per room, a `"*"` names many). At most
//! [`MAX_LIMIT`] publications are returned, newest last.

use std::sync::Arc;

use axum::{
    Json,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
};
use serde_json::{Value, json, value::RawValue};

use crate::{rooms::Room, state::AppState};

use super::{admin::require_admin, error::ApiError};

/// Publications returned unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// The most publications one request returns.
const MAX_LIMIT: usize = 1000;

pub(super) async fn room_history(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let (room, limit) = params(query.as_deref().unwrap_or(""))?;
    let Some(page) = state.fanout.history(&room, limit) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no-history",
            format!(
                "{room} keeps no history: no [[history.rooms]] entry covers it, or nothing was published or subscribed there since the host started (or since the room was dropped to stay within [history] max_bytes)"
            ),
        ));
    };
    let publications: Vec<Value> = page
        .publications
        .iter()
        .map(|p| {
            // The frame holds validated JSON; it is copied in unparsed.
            let data = RawValue::from_string(p.frame.data().to_owned()).ok();
            json!({ "offset": p.offset, "seq": p.seq, "at_ms": p.at_ms, "data": data })
        })
        .collect();
    Ok(Json(json!({
        "room": room.to_json(),
        "epoch": &*page.position.epoch,
        "offset": page.position.offset,
        "publications": publications,
        "history_bytes": state.fanout.history_bytes(),
    })))
}

/// `room` (required, a concrete room as JSON) and `limit` (1 to
/// [`MAX_LIMIT`]).
fn params(query: &str) -> Result<(Room, usize), ApiError> {
    let mut room = None;
    let mut limit = DEFAULT_LIMIT;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "room" => room = Some(value.into_owned()),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            _ => {}
        }
    }
    let room = room.ok_or_else(|| {
        ApiError::bad_request(
            "name the room: ?room= and the room as JSON, URL-encoded, e.g. room=%7B%22chat%22%3A1%7D",
        )
    })?;
    let value: Value = serde_json::from_str(&room).map_err(|e| {
        ApiError::bad_request(format!(
            "room is not JSON ({e}): send the room object a client subscribes with"
        ))
    })?;
    let room = Room::parse(&value)
        .map_err(|e| ApiError::bad_request(format!("room is not a room: {e}")))?;
    if room.has_wildcard() {
        return Err(ApiError::bad_request(
            "history is kept per room: name one room, without \"*\" values",
        ));
    }
    Ok((room, limit))
}
