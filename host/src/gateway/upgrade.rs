//! `GET /ws/`: the upgrade (origin check, connection limit, socket buffer
//! sizes, credentials, dialect) that hands the socket to a session, and the
//! diagnostic echo endpoint on the same stack.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, RawQuery, State, WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

use crate::{
    auth::{Credentials, TokenSource},
    protocol::{Dialect, Extended, Legacy, MAX_PUBLISH_BYTES, SUBPROTOCOL},
    state::AppState,
};

use super::{
    origin,
    session::{self, Connection, Slot},
};

/// Socket buffer sizes (DESIGN §9: tungstenite's 128 KiB default read
/// buffer costs ~83 KB per idle connection). tungstenite allocates the read
/// buffer up front and keeps it, so every idle connection pays for all of
/// it: 512 bytes holds a client's usual frame (a subscribe, a call) in one
/// read; a larger frame grows the buffer to fit and takes more reads
/// (issue 13: the 4 KiB buffer was a third of an idle connection's cost).
const READ_BUFFER: usize = 512;
const WRITE_BUFFER: usize = 8 * 1024;

/// Bytes tungstenite may hold unsent for one connection: room for the
/// largest publish plus a batch. Finite, so a stuck client cannot grow it.
fn max_write_buffer(limits: &crate::config::Limits) -> usize {
    limits.max_frame_bytes.max(MAX_PUBLISH_BYTES) * 2 + WRITE_BUFFER
}

/// `GET /ws/`: upgrades and runs a session.
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let creds = Credentials::from_request(&headers, query.as_deref(), Some(remote));
    if let Some(refused) = foreign_origin(&state, &headers, &creds) {
        return refused;
    }
    let limits = state.config.load().limits.clone();
    if !state.sessions.try_reserve(limits.max_connections) {
        tracing::warn!(
            limit = limits.max_connections,
            "websocket connection refused: the connection limit is reached (raise [limits] max_connections if the machine allows)"
        );
        return (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response();
    }
    let resume = query.as_deref().and_then(resume_param);
    // Offering `modhost.v1` selects the extended dialect; a client that
    // asks for nothing gets high-templar's, unchanged.
    let ws = ws.protocols([SUBPROTOCOL]);
    let dialect: &'static dyn Dialect = if ws.selected_protocol().is_some() {
        &Extended
    } else {
        &Legacy
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(max_write_buffer(&limits))
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_failed_upgrade(|error| tracing::debug!("websocket upgrade failed: {error}"))
        // The slot travels with the upgrade: if it never completes, the
        // callback is dropped and the slot with it. Boxed: axum's upgrade
        // task keeps its callback for as long as the connection lasts.
        .on_upgrade({
            let connection = Box::new(Connection {
                slot: Slot(state.clone()),
                state,
                creds,
                resume,
                remote: Some(remote),
                dialect,
            });
            move |socket| {
                let (sink, stream) = socket.split();
                session::run(sink, stream, connection)
            }
        })
}

/// A 403 for an upgrade from another site's page when cookies could
/// authenticate it: the token came from the `access_token` cookie, or
/// bootstrap mode will forward the browser's cookies (see `origin.rs`).
fn foreign_origin(state: &AppState, headers: &HeaderMap, creds: &Credentials) -> Option<Response> {
    let config = state.config.load();
    let cookies_count =
        creds.token_source == TokenSource::Cookie || config.auth.bootstrap.is_some();
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !cookies_count || origin::allowed(origin, host, &config.server.allowed_origins) {
        return None;
    }
    let origin = origin.unwrap_or_default();
    tracing::debug!(
        origin,
        "websocket upgrade refused: foreign origin with cookie authentication"
    );
    let reason = format!(
        "forbidden origin: a page on {origin:?} may not open a websocket authenticated by this site's cookies; list it in [server] allowed_origins if it is yours"
    );
    Some((StatusCode::FORBIDDEN, reason).into_response())
}

/// The `resume` query parameter (a hex token; anything else is ignored).
fn resume_param(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("resume="))
        .filter(|t| !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
}

/// `[diagnostics] ws_echo_path`: echoes every message back, on the same
/// websocket stack and settings as `/ws/` (for conformance test suites).
pub async fn echo(State(state): State<Arc<AppState>>, ws: WebSocketUpgrade) -> Response {
    use axum::extract::ws::Message;
    let limits = state.config.load().limits.clone();
    if !state.sessions.try_reserve(limits.max_connections) {
        return (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response();
    }
    let slot = Slot(state.clone());
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(max_write_buffer(&limits))
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |mut socket| async move {
            let _slot = slot;
            while let Some(Ok(msg)) = socket.next().await {
                let reply = match msg {
                    Message::Text(_) | Message::Binary(_) => msg,
                    // tungstenite queued the close reply; the next read
                    // flushes it and then ends the stream (a clean close).
                    // Leaving now would drop the socket unflushed.
                    Message::Close(_) | Message::Ping(_) | Message::Pong(_) => continue,
                };
                if socket.send(reply).await.is_err() {
                    break;
                }
            }
        })
}
