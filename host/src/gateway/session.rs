//! One websocket connection: authenticate, resume or start a session, then
//! read frames and write the outbox until either side closes, the client
//! idles out or falls behind, its credentials end (`revoke`: a static
//! token removed, a token past its `exp`, an account disabled or logged
//! out), or the host shuts down. A client that drops without closing
//! leaves its session parked for the grace period.
//!
//! The loop is generic over the socket's two halves (a `Sink` and a
//! `Stream` of messages), so its state machine is tested with channels
//! (`gateway/tests.rs`) as well as over real sockets (`tests/`).

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::Poll,
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{
    Sink, SinkExt, Stream, StreamExt,
    future::{MaybeDone, maybe_done},
};
use tokio::sync::{oneshot, watch};

use crate::{
    auth::{Credentials, Principal, Source},
    cmd::{Command, Session, SessionParts},
    protocol::{CLOSE_REVOKED, Dialect},
    rooms::Room,
    sessions::{
        CLOSE_TOO_SLOW, MAX_PARKED_PER_USER, Outbox, OutboxReceiver, OutboxState, Parked,
        ResumeRefused, handover::Moved,
    },
    state::AppState,
};

use super::{
    close::{CLOSE_GOING_AWAY, CLOSE_IDLE, DISCONNECTED_REASON, read_error_close},
    handover, revoke,
    writer::{Stop, WriterBack, drive, write_loop},
};

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

/// How long the writer gets to send its farewell once the session ends.
const WRITER_GRACE: Duration = Duration::from_secs(5);

/// How a connection ended.
enum End {
    /// The client sent a close frame: it is done.
    ClientClosed,
    /// The connection broke: the session may be resumed.
    Dropped,
    /// The host closes it with this code.
    Close(u16, &'static str),
}

/// A reserved connection slot, given back when dropped, however the
/// connection ends.
pub struct Slot(pub Arc<AppState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.sessions.release();
    }
}

/// What a session starts from.
pub struct Connection {
    /// The host.
    pub state: Arc<AppState>,
    /// The credentials presented at upgrade.
    pub creds: Credentials,
    /// `?resume=<token>`, if given.
    pub resume: Option<String>,
    /// The peer, for logs and the admin API.
    pub remote: Option<SocketAddr>,
    /// The connection slot reserved at upgrade.
    pub slot: Slot,
    /// How this connection's frames are written.
    pub dialect: &'static dyn Dialect,
}

/// A session just opened, before its loop runs.
pub(super) struct Opened {
    pub(super) session: Session,
    rx: OutboxReceiver,
    pub(super) preamble: Vec<String>,
    /// The resume token, for a dialect that resumes.
    token: Option<String>,
    resumed: bool,
    /// The session is already in the host's table (resumed from this
    /// host's parked ones).
    listed: bool,
}

/// Serves one connection over `sink` (to the client) and `stream` (from
/// it). The connection slot is released when this returns.
///
/// This future is most of an idle connection's memory (issue 13), so it
/// is kept small: `connection` comes boxed (an async fn keeps its
/// arguments for as long as it runs, beside what is moved out of them),
/// the reader and the writer are pinned where they are built (binding
/// then `tokio::pin!` stores a future twice), and what only the start or
/// the end of a session uses (authentication, a refusal, `finish`) is
/// boxed while it runs.
pub async fn run<W, R>(mut sink: W, mut stream: R, connection: Box<Connection>)
where
    W: Sink<Message> + Unpin + Send + 'static,
    W::Error: Send,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Connection {
        state,
        creds,
        resume,
        remote,
        slot,
        dialect,
    } = *connection;
    // Boxed, with the credentials moved in: a bootstrap request's future
    // and the client's headers are freed once the client is known, instead
    // of taking room in the task for as long as the connection lasts.
    let Some((principal, allowed)) = Box::pin(authenticate(&state, creds, remote)).await else {
        Box::pin(refuse(&mut sink, dialect)).await;
        return;
    };
    // A token another host of the cluster issued: that host is asked for
    // the session (boxed: only a resume that moves waits here).
    let resume = resume.filter(|_| dialect.resumes());
    let moved = match resume.as_deref() {
        Some(token) => Box::pin(handover::from_elsewhere(&state, token, &principal)).await,
        None => None,
    };
    let Opened {
        mut session,
        rx,
        preamble,
        token,
        resumed,
        listed,
    } = open(
        &state,
        principal,
        allowed,
        resume.as_deref(),
        dialect,
        moved,
    );
    let (stop_tx, stop_rx) = oneshot::channel::<Stop>();
    // The writer runs in this task, beside the reader, not in a task of
    // its own: an idle connection then costs one task, not two (issue 13).
    // It is polled whenever the task wakes, so it drains the outbox while
    // the reader waits for a frame, paces replies, or is finishing.
    let mut writer = std::pin::pin!(maybe_done(write_loop(sink, preamble, rx, stop_rx)));
    if !listed {
        let user = &session.principal.user;
        let outbox = session.outbox.clone();
        state
            .sessions
            .insert(session.id, user, outbox, dialect, remote);
    }
    // An account disabled or logged out between the check at upgrade and
    // the insert above was asked about before this session could be found:
    // one check of its own, now that the watcher will find it.
    if matches!(session.principal.source, Source::Account { .. }) {
        session.outbox.state().request_recheck();
    }
    tracing::debug!(
        session = %session.name, user = %session.principal.user, remote = ?remote,
        resumed, protocol = dialect.name(), "websocket session opened"
    );
    let end = {
        let outbox = session.outbox.state().clone();
        let serve = std::pin::pin!(serve(&mut session, &mut stream));
        drive(writer.as_mut(), serve, &outbox).await
    };
    let writer = Writer {
        task: writer,
        stop: stop_tx,
    };
    Box::pin(finish(session, end, writer, slot, token)).await;
}

/// Who the client is and which rooms it may use; `None` refuses it. A
/// static token's rooms were parsed when the config was loaded and are
/// shared by its sessions; a JWT's or a bootstrap reply's are parsed here.
pub(super) async fn authenticate(
    state: &AppState,
    creds: Credentials,
    remote: Option<SocketAddr>,
) -> Option<(Principal, Arc<[Room]>)> {
    let authenticator = state.auth.load_full();
    let principal = match authenticator.authenticate(&creds).await {
        Ok(principal) => principal,
        Err(error) => {
            tracing::info!(remote = ?remote, "websocket client refused: {error}");
            return None;
        }
    };
    if let Source::Static { token_digest } = &principal.source
        && let Some(rooms) = authenticator.static_rooms(token_digest)
    {
        return Some((principal, rooms));
    }
    // high-templar: unparsable allowed rooms → unauthorized.
    let allowed: Result<Arc<[Room]>, String> = principal
        .allowed_rooms
        .iter()
        .map(|r| Room::parse(r).map_err(|e| format!("{r}: {e}")))
        .collect();
    match allowed {
        Ok(allowed) => Some((principal, allowed)),
        Err(reason) => {
            tracing::warn!(user = %principal.user, "websocket client refused: its allowed rooms are unusable: {reason}");
            None
        }
    }
}

/// Resumes the parked session named by `resume`, or starts a new one, and
/// says what goes out before anything queued: the greeting, the offer, and
/// how the resume went. `moved` is the answer of the host of the cluster
/// that parked it, when another one did (`None` inside: refused).
pub(super) fn open(
    state: &Arc<AppState>,
    principal: Principal,
    allowed: Arc<[Room]>,
    resume: Option<&str>,
    dialect: &'static dyn Dialect,
    moved: Option<Option<Moved>>,
) -> Opened {
    let mut parked: Option<(Parked, bool)> = None;
    let (moved, mut refused) = match moved {
        Some(Some(moved)) => (Some(moved), None),
        Some(None) => (None, Some(ResumeRefused::Unknown)),
        None => (None, None),
    };
    // A dialect without resume never handed out a token to come back with.
    let resume = resume.filter(|_| dialect.resumes());
    if let Some(token) = resume.filter(|_| moved.is_none() && refused.is_none()) {
        match state.sessions.parked.take(token, &principal) {
            Ok(p) => {
                let lost = p.outbox.state().unpark();
                parked = Some((p, !lost));
            }
            Err(why) => {
                if why == ResumeRefused::OtherUser {
                    tracing::info!(user = %principal.user, "resume refused: the token belongs to another user's session (or to another static token)");
                }
                refused = Some(why);
            }
        }
    }
    let listed = parked.is_some();
    let mut complete = parked.as_ref().map(|(_, complete)| *complete);
    let (id, outbox, rx, calls) = match parked {
        Some((p, _)) => (p.id, p.outbox, p.rx, Some(p.calls)),
        None => {
            let send_queue = state.config.load().limits.send_queue;
            let (outbox, rx) = Outbox::new(send_queue);
            (state.sessions.next_id(), outbox, rx, None)
        }
    };
    let mut session = Session::new(SessionParts {
        id,
        principal,
        allowed,
        outbox,
        state: state.clone(),
        dialect,
        calls,
    });
    // An anonymous client's name is new on every connection, so no later
    // connection could resume its session: it gets no token and is never
    // parked.
    let token =
        (dialect.resumes() && session.principal.resumable()).then(|| handover::resume_token(state));
    let mut preamble = session.hello(token.as_deref());
    if let Some(moved) = moved {
        complete = Some(handover::take_over(&mut session, moved));
    }
    // The rooms as JSON were for the greeting; `session.allowed` stands
    // for them from now on. A copy per session (a map node per pattern,
    // ~600 bytes) was the largest of an idle session's small allocations
    // (issue 13).
    session.principal.allowed_rooms = Vec::new();
    // One answer whatever the reason: a client must not learn that a token
    // it does not own is live.
    let how = match (complete, refused) {
        (Some(complete), _) => dialect.resumed(complete),
        (None, Some(_)) => dialect.resume_failed("unknown-or-expired"),
        (None, None) => None,
    };
    preamble.extend(how);
    Opened {
        session,
        rx,
        preamble,
        token,
        resumed: complete.is_some(),
        listed,
    }
}

/// Reads and applies client frames until the connection ends.
async fn serve<R>(session: &mut Session, stream: &mut R) -> End
where
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let state = session.state.clone();
    let outbox = session.outbox.state().clone();
    let reply_window =
        session.limits.max_subscriptions + session.limits.max_calls_in_flight + REPLY_HEADROOM;
    let mut offers = state.registry.subscribe_changes();
    offers.mark_unchanged();
    let mut shutdown = state.shutdown.clone();
    let mut config_changes = state.config_applied.subscribe();
    config_changes.mark_unchanged();
    // Boxed, and only for a JWT, OIDC or account session: the timer would otherwise take
    // room in every session's task, most of which never expire.
    let mut expiry = session
        .principal
        .expires()
        .map(|expires| Box::pin(credential_expiry(expires)));
    let idle = state.config.load().server.idle_timeout;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        let msg = tokio::select! {
            biased;
            _ = outbox.overflowed() => return too_slow(session, "too slow: messages were queued faster than the client read them"),
            _ = shutdown.changed() => return End::Close(CLOSE_GOING_AWAY, session.dialect.shutdown_reason()),
            () = async {
                match expiry.as_mut() {
                    Some(expiry) => expiry.await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::info!(session = %session.name, user = %session.principal.user, reason = "token expired", "revoked: closing a session whose token expired");
                return End::Close(CLOSE_REVOKED, "token expired");
            }
            changed = config_changes.changed() => {
                if changed.is_ok()
                    && let Some(reason) = revoke::recheck_token(session)
                {
                    return End::Close(CLOSE_REVOKED, reason);
                }
                continue;
            }
            // Woken by `OutboxState::request_recheck` (the account watcher).
            () = std::future::poll_fn(|_| if outbox.disconnect_requested() || outbox.take_recheck() { Poll::Ready(()) } else { Poll::Pending }) => {
                if outbox.disconnect_requested() {
                    tracing::info!(session = %session.name, user = %session.principal.user, "closing a session an operator disconnected");
                    return End::Close(CLOSE_REVOKED, DISCONNECTED_REASON);
                }
                if let Some(reason) = revoke::recheck_account(session) {
                    return End::Close(CLOSE_REVOKED, reason);
                }
                continue;
            }
            _ = &mut idle_timer => return End::Close(CLOSE_IDLE, "idle timeout"),
            changed = offers.changed() => {
                if changed.is_ok() {
                    session.send_resource_offer();
                }
                continue;
            }
            msg = stream.next() => msg,
        };
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(error)) => match read_error_close(&error) {
                Some((code, reason)) => return End::Close(code, reason),
                None => return End::Dropped,
            },
            None => return End::Dropped,
        };
        idle_timer
            .as_mut()
            .reset(tokio::time::Instant::now() + idle);
        // Replies pace reading: the frame waits until its reply fits.
        // Boxed: it runs only while a client outpaces its replies, and
        // would otherwise take room in every idle session.
        if !outbox.replies_fit(reply_window, REPLY_WINDOW_BYTES)
            && let Err(end) = Box::pin(pace_replies(
                &outbox,
                reply_window,
                &mut shutdown,
                session.dialect,
            ))
            .await
        {
            return match end {
                End::Close(CLOSE_TOO_SLOW, reason) => too_slow(session, reason),
                end => end,
            };
        }
        let counters = &state.sessions.counters;
        let text = match &msg {
            Message::Text(text) => text.as_str(),
            // Not a text frame: answered as what it is, not JSON.
            Message::Binary(_) => "\u{0}binary",
            Message::Close(_) => return End::ClientClosed,
            // tungstenite answers pings itself.
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        counters
            .ws_messages_received
            .fetch_add(1, Ordering::Relaxed);
        Command::from_text(text, session.limits.max_json_depth).apply(session);
    }
}

/// Ends at `expires`, when the credentials the session was opened with
/// stop being valid (a JWT's `exp` plus leeway). Wakes at least daily to follow the wall clock (the expiry
/// is a wall-clock time).
async fn credential_expiry(expires: std::time::SystemTime) {
    const WAKE: Duration = Duration::from_secs(24 * 3600);
    while let Ok(left) = expires.duration_since(std::time::SystemTime::now()) {
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(WAKE)).await;
    }
}

/// Counts and logs a client closed for not reading.
fn too_slow(session: &Session, reason: &'static str) -> End {
    let counters = &session.state.sessions.counters;
    counters
        .slow_consumers_closed
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        session = %session.name, user = %session.principal.user,
        "closing a client that does not read: {reason}"
    );
    End::Close(CLOSE_TOO_SLOW, reason)
}

/// Waits until the replies still unsent fit the session's window, so the
/// next client frame may be handled. Gives up (4008) on a client whose
/// writer takes no reply for [`REPLY_STALL`]: it sends but does not read.
async fn pace_replies(
    outbox: &OutboxState,
    window: usize,
    shutdown: &mut watch::Receiver<bool>,
    dialect: &'static dyn Dialect,
) -> Result<(), End> {
    loop {
        let progress = outbox.progress();
        tokio::select! {
            biased;
            _ = outbox.overflowed() => {
                return Err(End::Close(CLOSE_TOO_SLOW, "too slow: messages were queued faster than the client read them"));
            }
            _ = shutdown.changed() => return Err(End::Close(CLOSE_GOING_AWAY, dialect.shutdown_reason())),
            _ = outbox.replies_drained(window, REPLY_WINDOW_BYTES) => return Ok(()),
            _ = tokio::time::sleep(REPLY_STALL) => {
                if outbox.progress() == progress {
                    return Err(End::Close(CLOSE_TOO_SLOW, "too slow: replies were not read for 10 s"));
                }
            }
        }
    }
}

/// The session's writer (a future of the session's task) and how to stop
/// it.
struct Writer<'a, F: Future<Output = WriterBack>> {
    task: Pin<&'a mut MaybeDone<F>>,
    stop: oneshot::Sender<Stop>,
}

impl<F: Future<Output = WriterBack>> Writer<'_, F> {
    /// Tells the writer to stop and runs it to its end, for at most
    /// [`WRITER_GRACE`]; what it hands back, or `None` if it overran (it
    /// is dropped then, and the socket with it).
    async fn stop(mut self, stop: Stop) -> Option<WriterBack> {
        let _ = self.stop.send(stop);
        tokio::time::timeout(WRITER_GRACE, self.task.as_mut())
            .await
            .ok()?;
        self.task.as_mut().take_output()
    }
}

/// Stops the writer, then parks the session (the client dropped and may
/// resume) or forgets it. A client that closed is forgotten before its
/// close is answered, so once it sees the answer, the host's counts no
/// longer include it.
async fn finish<F: Future<Output = WriterBack>>(
    session: Session,
    end: End,
    writer: Writer<'_, F>,
    slot: Slot,
    token: Option<String>,
) {
    let state = session.state.clone();
    let (id, grace) = (session.id, state.config.load().server.resume_grace);
    if matches!(end, End::ClientClosed) {
        forget(&state, &session);
        drop(slot);
        writer.stop(Stop::AnswerClose).await;
        return;
    }
    // Parked sessions hold no connection slot, so they get a cap of their
    // own: at most as many as live connections may exist.
    let park = matches!(end, End::Dropped)
        && !grace.is_zero()
        && state.sessions.parked() < session.limits.max_connections;
    let token = token.filter(|_| park);
    let stop = match end {
        End::Close(code, reason) => Stop::Close(code, reason),
        End::ClientClosed | End::Dropped => Stop::Quit,
    };
    let back = writer.stop(stop).await;
    drop(slot);
    if let Some(token) = token
        && let Some(back) = back
    {
        let outbox_state = session.outbox.state().clone();
        if back.lost_in_flight {
            outbox_state.mark_lost();
        }
        outbox_state.park(session.limits.resume_buffer);
        let name = session.name.clone();
        let user = session.principal.user.clone();
        let dropped = state.sessions.parked.park(
            token.clone(),
            Parked {
                id,
                principal: session.principal,
                outbox: session.outbox,
                rx: back.rx,
                calls: session.calls,
            },
        );
        for old in dropped {
            state.fanout.remove_session(old.id);
            state.sessions.remove(old.id);
            tracing::info!(
                session = %crate::sessions::session_name(old.id), user = %user,
                "parked session dropped: the user has {MAX_PARKED_PER_USER} newer ones parked"
            );
        }
        tracing::debug!(session = %name, "client dropped; session parked for {} s", grace.as_secs());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if state.sessions.parked.expire(&token, id).is_some() {
                state.fanout.remove_session(id);
                state.sessions.remove(id);
                tracing::debug!(session = %name, "parked session expired");
            }
        });
        return;
    }
    forget(&state, &session);
}

/// Removes a session that ends for good from the rooms and the table.
fn forget(state: &AppState, session: &Session) {
    state.fanout.remove_session(session.id);
    state.sessions.remove(session.id);
    tracing::debug!(session = %session.name, "websocket session closed");
}

/// The refusal frame and the dialect's close (4001, or high-templar's
/// 1000).
async fn refuse<W>(sink: &mut W, dialect: &dyn Dialect)
where
    W: Sink<Message> + Unpin,
{
    let (frame, code, reason) = dialect.unauthorized();
    let farewell = async {
        sink.send(Message::Text(frame.into())).await?;
        sink.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), farewell).await;
}
