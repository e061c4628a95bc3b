//! One websocket connection: authenticate, resume or start a session, then
//! read frames and write the outbox until either side closes, the client
//! idles out or falls behind, or the host shuts down. A client that drops
//! without closing leaves its session parked for the grace period.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use tokio::sync::oneshot;

use crate::{auth::Credentials, protocol, state::AppState};

use super::{
    commands::{Session, SessionContext},
    outbox::{CLOSE_TOO_SLOW, Outbox, OutboxReceiver, OutboxState, Outgoing},
    parked::{Parked, ResumeRefused},
};

/// Close code sent after `{"is_authorized": false}`.
pub const CLOSE_UNAUTHORIZED: u16 = 4001;
/// Close code for an idle client.
pub const CLOSE_IDLE: u16 = 4000;
/// Close code when the host shuts down.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Unsent replies a session allows, beyond one per subscription and one
/// per call the limits allow, before it stops reading client frames. So a
/// client may pipeline everything its limits allow before it reads a
/// single reply, whatever the socket buffers hold and however long the
/// writer is kept from running. A client that sends more without reading
/// is slowed down (its frames wait in the socket), never closed for its
/// own replies; only what it did not ask for can overflow the outbox.
const REPLY_HEADROOM: usize = 64;

/// Unsent reply bytes past which a session stops reading client frames.
const REPLY_WINDOW_BYTES: usize = 1 << 20;

/// How long a session whose reading is paused waits with no reply taken by
/// its writer before it gives up on a client that sends requests but does
/// not read what they produce. Any progress starts the wait again, so a
/// slow reader (or a busy machine) is never closed by it.
const REPLY_STALL: Duration = Duration::from_secs(10);

/// Items the writer sends per flush at most.
const WRITE_BATCH: usize = 128;

/// How a connection ended.
enum End {
    /// The client sent a close frame: it is done.
    ClientClosed,
    /// The connection broke: the session may be resumed.
    Dropped,
    /// The host closes it with this code.
    Close(u16, &'static str),
}

/// What the writer is told when the session ends.
type Stop = Option<(u16, &'static str)>;

/// Serves one connection. The connection slot was reserved by the caller
/// and is released when `slot` drops.
pub(super) async fn run(
    socket: WebSocket,
    state: Arc<AppState>,
    creds: Credentials,
    resume: Option<String>,
    remote: Option<SocketAddr>,
    slot: Slot,
) {
    let _slot = slot;
    let config = state.config.load_full();
    let limits = config.limits.clone();
    let (mut sink, mut stream) = socket.split();

    let authenticator = state.auth.load_full();
    let principal = match authenticator.authenticate(&creds).await {
        Ok(principal) => principal,
        Err(error) => {
            tracing::info!(remote = ?remote, "websocket client refused: {error}");
            refuse(&mut sink).await;
            return;
        }
    };
    let allowed = match super::parse_allowed_rooms(&principal.allowed_rooms) {
        Ok(rooms) => rooms,
        Err(reason) => {
            tracing::warn!(user = %principal.user, "websocket client refused: its allowed rooms are unusable: {reason}");
            refuse(&mut sink).await;
            return;
        }
    };

    // Resume the parked session named by the token, or start a new one.
    let mut resumed: Option<(Parked, bool)> = None;
    let mut resume_failed: Option<ResumeRefused> = None;
    if let Some(token) = &resume {
        match state.sessions.parked.take(token, &principal.user) {
            Ok(parked) => {
                let lost = parked.outbox.state().unpark();
                resumed = Some((parked, !lost));
            }
            Err(refused) => resume_failed = Some(refused),
        }
    }
    let (id, outbox, outbox_rx, calls, complete) = match resumed {
        Some((p, complete)) => (p.id, p.outbox, p.rx, Some(p.calls), Some(complete)),
        None => {
            let (outbox, rx) = Outbox::new(limits.send_queue);
            (state.sessions.next_id(), outbox, rx, None, None)
        }
    };
    let session_state = outbox.state().clone();
    let reply_window = limits.max_subscriptions + limits.max_calls_in_flight + REPLY_HEADROOM;
    let token = resume_token();
    let mut session = Session::new(
        SessionContext {
            id,
            name: super::session_name(id),
            principal,
            allowed,
            outbox: outbox.clone(),
            state: state.clone(),
            limits: limits.clone(),
        },
        calls,
    );
    // What goes out before anything queued: the greeting, the offer, and
    // how the resume went.
    let mut preamble: Vec<String> = session.hello(Some(&token)).into();
    match (complete, resume_failed) {
        (Some(complete), _) => preamble.push(protocol::resumed(complete)),
        (None, Some(why)) => preamble.push(protocol::resume_failed(match why {
            ResumeRefused::Unknown => "unknown-or-expired",
            ResumeRefused::OtherUser => "other-user",
        })),
        (None, None) => {}
    }
    let (stop_tx, stop_rx) = oneshot::channel::<Stop>();
    let writer = tokio::spawn(write_loop(sink, preamble, outbox_rx, stop_rx));
    if complete.is_none() {
        state
            .sessions
            .insert(id, &session.ctx.principal.user, outbox.clone(), remote);
    }
    tracing::debug!(
        session = %session.ctx.name, user = %session.ctx.principal.user, remote = ?remote,
        resumed = complete.is_some(), "websocket session opened"
    );

    let mut offers = state.registry.subscribe_changes();
    offers.mark_unchanged();
    let mut shutdown = state.shutdown.clone();
    let idle = config.server.idle_timeout;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);

    let end = loop {
        tokio::select! {
            biased;
            _ = session_state.overflowed() => {
                state.sessions.counters.slow_consumers_closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session = %session.ctx.name, user = %session.ctx.principal.user, "closing a client that fell behind ({} messages queued)", limits.send_queue);
                break End::Close(CLOSE_TOO_SLOW, "too slow: messages were queued faster than the client read them");
            }
            _ = shutdown.changed() => break End::Close(CLOSE_GOING_AWAY, "server shutting down"),
            _ = &mut idle_timer => break End::Close(CLOSE_IDLE, "idle timeout"),
            changed = offers.changed() => {
                if changed.is_ok() {
                    session.send_resource_offer();
                }
            }
            msg = stream.next() => {
                let msg = match msg {
                    Some(Ok(msg)) => msg,
                    Some(Err(error)) => match read_error_close(&error) {
                        Some((code, reason)) => break End::Close(code, reason),
                        None => break End::Dropped,
                    },
                    None => break End::Dropped,
                };
                idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                // Replies pace reading: the frame waits until its reply fits.
                if !session_state.replies_fit(reply_window, REPLY_WINDOW_BYTES)
                    && let Err(end) = pace_replies(&session_state, reply_window, &mut shutdown).await
                {
                    if let End::Close(CLOSE_TOO_SLOW, reason) = end {
                        state.sessions.counters.slow_consumers_closed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(session = %session.ctx.name, user = %session.ctx.principal.user, "closing a client that does not read: {reason}");
                    }
                    break end;
                }
                match msg {
                    Message::Text(text) => {
                        state.sessions.counters.ws_messages_received.fetch_add(1, Ordering::Relaxed);
                        session.handle_text(text.as_str());
                    }
                    Message::Binary(_) => {
                        state.sessions.counters.ws_messages_received.fetch_add(1, Ordering::Relaxed);
                        session.handle_text("\u{0}binary");
                    }
                    Message::Close(_) => break End::ClientClosed,
                    // tungstenite answers pings itself.
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
        }
    };

    let grace = config.server.resume_grace;
    // Parked sessions hold no connection slot, so they get a cap of their
    // own: at most as many as live connections may exist.
    let park = matches!(end, End::Dropped)
        && !grace.is_zero()
        && state.sessions.parked() < limits.max_connections;
    let stop: Stop = match end {
        End::Close(code, reason) => Some((code, reason)),
        End::ClientClosed | End::Dropped => None,
    };
    let _ = stop_tx.send(stop);
    let writer_result = tokio::time::timeout(Duration::from_secs(5), writer).await;
    let name = session.ctx.name.clone();
    let user = session.ctx.principal.user.clone();
    if park && let Ok(Ok(back)) = writer_result {
        if back.lost_in_flight {
            session_state.mark_lost();
        }
        session_state.park(limits.resume_buffer);
        let calls = session.calls().clone();
        drop(session);
        state.sessions.parked.park(
            token.clone(),
            Parked {
                id,
                user,
                outbox,
                rx: back.rx,
                calls,
            },
        );
        tracing::debug!(session = %name, "client dropped; session parked for {} s", grace.as_secs());
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if state.sessions.parked.expire(&token, id).is_some() {
                state.fanout.remove_session(id);
                state.sessions.remove(id);
                tracing::debug!(session = %super::session_name(id), "parked session expired");
            }
        });
        return;
    }
    state.fanout.remove_session(id);
    state.sessions.remove(id);
    tracing::debug!(session = %name, "websocket session closed");
}

/// Waits until the replies still unsent fit the session's window, so the
/// next client frame may be handled. Gives up (4008) on a client whose
/// writer takes no reply for [`REPLY_STALL`]: it sends but does not read.
async fn pace_replies(
    outbox: &OutboxState,
    window: usize,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), End> {
    loop {
        let progress = outbox.progress();
        tokio::select! {
            biased;
            _ = outbox.overflowed() => {
                return Err(End::Close(CLOSE_TOO_SLOW, "too slow: messages were queued faster than the client read them"));
            }
            _ = shutdown.changed() => return Err(End::Close(CLOSE_GOING_AWAY, "server shutting down")),
            _ = outbox.replies_drained(window, REPLY_WINDOW_BYTES) => return Ok(()),
            _ = tokio::time::sleep(REPLY_STALL) => {
                if outbox.progress() == progress {
                    return Err(End::Close(CLOSE_TOO_SLOW, "too slow: replies were not read for 10 s"));
                }
            }
        }
    }
}

/// A new, unguessable resume token.
fn resume_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness a token could be guessed: make it unusable.
        return String::new();
    }
    hex::encode(bytes)
}

/// `{"is_authorized": false}` and close 4001.
async fn refuse(sink: &mut SplitSink<WebSocket, Message>) {
    let farewell = async {
        sink.send(Message::Text(protocol::unauthorized().into()))
            .await?;
        sink.send(Message::Close(Some(CloseFrame {
            code: CLOSE_UNAUTHORIZED,
            reason: Utf8Bytes::from_static("unauthorized"),
        })))
        .await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), farewell).await;
}

/// The close code for a read error: the frame was too big (1009), not
/// UTF-8 (1007), or broke the protocol (1002). `None`: the connection
/// itself failed.
fn read_error_close(error: &axum::Error) -> Option<(u16, &'static str)> {
    let text = error.to_string();
    // tungstenite files a dropped TCP connection under protocol errors.
    if text.contains("without closing handshake") {
        return None;
    }
    // Oversize messages and frames say "too long"; "Control frame too big"
    // is a protocol violation (RFC 6455 §5.5), not a size limit of ours.
    if text.contains("too long") || text.contains("Space limit") {
        Some((1009, "message too big"))
    } else if text.contains("UTF-8") || text.contains("utf-8") || text.contains("Utf8") {
        Some((1007, "invalid UTF-8"))
    } else if text.contains("Protocol") || text.contains("protocol") {
        Some((1002, "protocol error"))
    } else {
        None
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

/// What the writer hands back when it stops: the outbox's receiving end
/// (a parked session keeps collecting into it).
struct WriterBack {
    rx: OutboxReceiver,
    /// A write failed with messages taken from the outbox: they are lost.
    lost_in_flight: bool,
}

/// Drains the outbox into the socket: everything pending, then one flush.
/// A stop request interrupts even a write blocked on a client that does
/// not read.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    preamble: Vec<String>,
    mut rx: OutboxReceiver,
    mut stop_rx: oneshot::Receiver<Stop>,
) -> WriterBack {
    let mut batch: Vec<Message> = preamble
        .into_iter()
        .map(|t| Message::Text(t.into()))
        .collect();
    let mut failed = false;
    let stop: Stop = loop {
        if batch.is_empty() {
            let first = tokio::select! {
                biased;
                stop = &mut stop_rx => break stop.unwrap_or(None),
                item = rx.recv() => match item {
                    Some(item) => item,
                    None => break None,
                },
            };
            batch.push(render(first));
        }
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Some(item) => batch.push(render(item)),
                None => break,
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
            // Stopped mid-write: what was taken from the outbox may be lost.
            stop = &mut stop_rx => {
                failed = true;
                break stop.unwrap_or(None);
            }
            result = write => if result.is_err() {
                // The connection is gone; wait for the session to decide.
                let _ = stop_rx.await;
                return WriterBack { rx, lost_in_flight: true };
            },
        }
    };
    if let Some((code, reason)) = stop {
        // Frames queued before the close (final replies) go out first,
        // except to a client closed for not reading.
        let drain = code != CLOSE_TOO_SLOW;
        let farewell = async {
            while drain && let Some(item) = rx.try_recv() {
                sink.feed(render(item)).await?;
            }
            sink.feed(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await?;
            sink.flush().await
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), farewell).await;
    }
    WriterBack {
        rx,
        lost_in_flight: failed,
    }
}

fn render(item: Outgoing) -> Message {
    match item {
        Outgoing::Text(text) | Outgoing::Reply(text) => Message::Text(text),
        Outgoing::Publish(frame, request_id) => Message::Text(frame.render(&request_id).into()),
    }
}
