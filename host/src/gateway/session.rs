//! One websocket connection: authenticate, then read frames and write the
//! outbox until either side closes, the client idles out or falls behind,
//! or the host shuts down.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use tokio::sync::{mpsc, oneshot};

use crate::{auth::Credentials, protocol, state::AppState};

use super::{
    commands::{Session, SessionContext},
    outbox::{CLOSE_TOO_SLOW, Outbox, Outgoing},
};

/// Close code sent after `{"is_authorized": false}`.
pub const CLOSE_UNAUTHORIZED: u16 = 4001;
/// Close code for an idle client.
pub const CLOSE_IDLE: u16 = 4000;
/// Close code when the host shuts down.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Items the writer sends per flush at most.
const WRITE_BATCH: usize = 128;

/// Serves one connection. The connection slot was reserved by the caller
/// and is released here.
pub(super) async fn run(
    socket: WebSocket,
    state: Arc<AppState>,
    creds: Credentials,
    remote: Option<SocketAddr>,
    slot: Slot,
) {
    let _slot = slot;
    let config = state.config.load_full();
    let limits = config.limits.clone();
    let (sink, mut stream) = socket.split();
    let (outbox, outbox_rx, overflow) = Outbox::new(limits.send_queue);
    let (close_tx, close_rx) = oneshot::channel::<(u16, &'static str)>();
    let writer = tokio::spawn(write_loop(sink, outbox_rx, close_rx));

    let authenticator = state.auth.load_full();
    let principal = match authenticator.authenticate(&creds).await {
        Ok(principal) => principal,
        Err(error) => {
            tracing::info!(remote = ?remote, "websocket client refused: {error}");
            outbox.text(protocol::unauthorized());
            let _ = close_tx.send((CLOSE_UNAUTHORIZED, "unauthorized"));
            let _ = writer.await;
            return;
        }
    };
    let allowed = match super::parse_allowed_rooms(&principal.allowed_rooms) {
        Ok(rooms) => rooms,
        Err(reason) => {
            tracing::warn!(user = %principal.user, "websocket client refused: its allowed rooms are unusable: {reason}");
            outbox.text(protocol::unauthorized());
            let _ = close_tx.send((CLOSE_UNAUTHORIZED, "unauthorized"));
            let _ = writer.await;
            return;
        }
    };

    let id = state.sessions.next_id();
    let mut session = Session::new(SessionContext {
        id,
        name: super::session_name(id),
        principal,
        allowed,
        outbox: outbox.clone(),
        state: state.clone(),
        limits: limits.clone(),
    });
    state
        .sessions
        .insert(id, &session.ctx.principal.user, outbox.clone(), remote);
    tracing::debug!(session = %session.ctx.name, user = %session.ctx.principal.user, remote = ?remote, "websocket session opened");
    session.send_hello();

    let mut offers = state.registry.subscribe_changes();
    offers.mark_unchanged();
    let mut shutdown = state.shutdown.clone();
    let idle = config.server.idle_timeout;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);

    let close: Option<(u16, &'static str)> = loop {
        tokio::select! {
            biased;
            _ = overflow.wait() => {
                state.sessions.counters.slow_consumers_closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session = %session.ctx.name, user = %session.ctx.principal.user, "closing a client that fell behind ({} messages queued)", limits.send_queue);
                break Some((CLOSE_TOO_SLOW, "too slow: messages were queued faster than the client read them"));
            }
            _ = shutdown.changed() => break Some((CLOSE_GOING_AWAY, "server shutting down")),
            _ = &mut idle_timer => break Some((CLOSE_IDLE, "idle timeout")),
            changed = offers.changed() => {
                if changed.is_ok() {
                    session.send_resource_offer();
                }
            }
            msg = stream.next() => {
                let msg = match msg {
                    Some(Ok(msg)) => msg,
                    Some(Err(error)) => break Some(read_error_close(&error)),
                    None => break None,
                };
                idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                match msg {
                    Message::Text(text) => {
                        state.sessions.counters.ws_messages_received.fetch_add(1, Ordering::Relaxed);
                        session.handle_text(text.as_str());
                    }
                    Message::Binary(_) => {
                        state.sessions.counters.ws_messages_received.fetch_add(1, Ordering::Relaxed);
                        session.handle_text("\u{0}binary");
                    }
                    Message::Close(_) => break None,
                    // tungstenite answers pings itself.
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
        }
    };

    state.fanout.remove_session(id);
    state.sessions.remove(id);
    session.close();
    if let Some(reason) = close {
        let _ = close_tx.send(reason);
    }
    drop(outbox);
    drop(session);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    tracing::debug!(session = %super::session_name(id), "websocket session closed");
}

/// The close code for a read error: the frame was too big (1009), not
/// UTF-8 (1007), or broke the protocol (1002).
fn read_error_close(error: &axum::Error) -> (u16, &'static str) {
    let text = error.to_string();
    if text.contains("too long") || text.contains("Space limit") || text.contains("too big") {
        (1009, "message too big")
    } else if text.contains("UTF-8") || text.contains("utf-8") || text.contains("Utf8") {
        (1007, "invalid UTF-8")
    } else {
        (1002, "protocol error")
    }
}

/// A reserved connection slot, given back when dropped, however the
/// connection ends.
pub(super) struct Slot(pub(super) Arc<AppState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.sessions.release();
    }
}

/// Drains the outbox into the socket: everything pending, then one flush.
/// A close request interrupts even a write blocked on a client that does
/// not read.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    mut close_rx: oneshot::Receiver<(u16, &'static str)>,
) {
    let mut batch: Vec<Message> = Vec::with_capacity(WRITE_BATCH);
    let close = loop {
        let first = tokio::select! {
            biased;
            reason = &mut close_rx => break reason.ok(),
            item = rx.recv() => match item {
                Some(item) => item,
                None => break None,
            },
        };
        batch.push(render(first));
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(render(item)),
                Err(_) => break,
            }
        }
        let write = async {
            for msg in batch.drain(..) {
                sink.feed(msg).await?;
            }
            sink.flush().await
        };
        tokio::select! {
            biased;
            reason = &mut close_rx => break reason.ok(),
            result = write => if result.is_err() { return },
        }
    };
    // Frames queued before the close (the unauthorized notice, final replies)
    // go out first, except to a client closed for not reading.
    let drain = close.is_none_or(|(code, _)| code != CLOSE_TOO_SLOW);
    let flush_rest = async {
        while drain && let Ok(item) = rx.try_recv() {
            sink.feed(render(item)).await?;
        }
        if let Some((code, reason)) = close {
            sink.feed(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await?;
        }
        sink.flush().await
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), flush_rest).await;
}

fn render(item: Outgoing) -> Message {
    match item {
        Outgoing::Text(text) => Message::Text(text),
        Outgoing::Publish(frame, request_id) => Message::Text(frame.render(&request_id).into()),
    }
}
