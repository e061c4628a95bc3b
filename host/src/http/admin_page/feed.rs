//! `GET /admin/feed?view=<view>`: a view's live updates over a websocket
//! on the host's own listener. The page's script opens it and falls back
//! to fetching the view every 2 s when it cannot.
//!
//! The upgrade is checked like a page (the session cookie, its login
//! still standing) and like a post (the `Origin` must be this host:
//! browsers send one with every websocket, and a cookie-authenticated
//! socket from another site would otherwise read the views). The host
//! renders the view when the set of modules changes and every
//! [`FEED_PERIOD`], and sends it only when it differs from the last one
//! sent. The login is checked again each time: a socket whose session
//! ended is closed with 4003. At most [`MAX_FEEDS`] feeds are open.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    Extension,
    extract::{
        Query, State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, StatusCode},
    response::Response,
};

use super::{AdminPages, guard, html, views};
use crate::{
    external::External, gateway::CLOSE_GOING_AWAY, http::ConfigStatus, protocol::CLOSE_REVOKED,
    state::AppState,
};

/// How often a feed renders its view when nothing else woke it.
pub(super) const FEED_PERIOD: Duration = Duration::from_secs(2);
/// Feeds open at once (an operator has a few tabs open).
pub(super) const MAX_FEEDS: usize = 16;
/// The largest message a feed reads (it expects none).
const MAX_CLIENT_MESSAGE: usize = 1024;

/// A feed's place among the [`MAX_FEEDS`]; given back on drop.
struct Slot(Arc<AdminPages>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.feeds.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take_slot(pages: &Arc<AdminPages>) -> Option<Slot> {
    pages
        .feeds
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_FEEDS).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(pages.clone()))
}

pub(crate) async fn feed(
    State(state): State<Arc<AppState>>,
    Extension(pages): Extension<Arc<AdminPages>>,
    external: Option<Extension<Arc<External>>>,
    config: Option<Extension<ConfigStatus>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = guard::session(&pages, &state, &headers) {
        return html::respond(StatusCode::UNAUTHORIZED, e.to_string());
    }
    if let Err(e) = guard::same_origin(&state, &headers) {
        return html::respond(StatusCode::FORBIDDEN, e.to_string());
    }
    let view = query.get("view").cloned().unwrap_or_default();
    if !html::VIEWS.iter().any(|(path, _)| *path == view) {
        return html::respond(StatusCode::NOT_FOUND, format!("there is no view {view:?}"));
    }
    let Some(slot) = take_slot(&pages) else {
        return html::respond(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_FEEDS} live views are open already; the page falls back to polling"),
        );
    };
    let cookie = guard::cookie(&headers).unwrap_or_default().to_owned();
    let sources = views::Sources {
        external: external.map(|Extension(e)| e),
        config: config.map(|Extension(c)| c),
    };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| run(socket, state, slot, sources, view, cookie))
}

async fn run(
    mut socket: WebSocket,
    state: Arc<AppState>,
    slot: Slot,
    sources: views::Sources,
    view: String,
    cookie: String,
) {
    let pages = slot.0.clone();
    let mut changes = state.registry.subscribe_changes();
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(FEED_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => {
                return close(socket, CLOSE_GOING_AWAY, "server shutting down").await;
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
        }
        let session = pages
            .sessions
            .get(&cookie)
            .filter(|s| guard::still_admin(&state, &s.login));
        let Some(session) = session else {
            pages.sessions.end(&cookie);
            return close(socket, CLOSE_REVOKED, "logged out").await;
        };
        let main = views::render(&view, &state, sources.clone(), &session.csrf)
            .await
            .unwrap_or_default();
        if main != last {
            if socket
                .send(Message::Text(main.clone().into()))
                .await
                .is_err()
            {
                return;
            }
            last = main;
        }
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
