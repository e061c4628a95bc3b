//! One external module's socket.
//!
//! Every frame goes through the same checks, in this order, before anything
//! is acted on:
//! 1. size: the socket refuses a frame past `[external] max_frame_bytes`
//!    (error, then close 1009);
//! 2. envelope: `signed_msg`, `origin`, `resolve_id` present
//!    (`message_format_error`);
//! 3. origin: once the connection is recognized, only its own module's
//!    frames (`protocol_error`); before that, the name sse-platform's
//!    upgrade body claimed, if it claimed one;
//! 4. signature with `verify_keys/<origin>.pub`, and the signed origin and
//!    resolve_id equal to the envelope's (`signature_verification_error`);
//! 5. the connection's challenge, when `[external] challenge = "required"`
//!    (`protocol_error`);
//! 6. replay: the `resolve_id` not seen before from this module (`replay`);
//! 7. `module_start` first (`protocol_error`), then the request itself
//!    (`requests.rs`).
//!
//! Before `module_start` a connection may send only a few frames
//! ([`MAX_FRAMES_BEFORE_START`]): each of them reads the key folders.
//!
//! Calls to the module arrive on a bounded outbox (`Link::send`), which the
//! loop drains; replies to the module's own requests are written as they
//! are made, so a module that stops reading stops being read.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    endpoint::Link,
    envelope::{self, Inbound},
    table::External,
};
use crate::{
    config::ChallengeMode, gateway::Slot, signing::Keyring, state::AppState, util::budget::Window,
};

/// Frames a connection may send before a `module_start` that succeeds.
pub(super) const MAX_FRAMES_BEFORE_START: u32 = 8;
/// How often calls past their deadline are timed out.
const SWEEP_EVERY: Duration = Duration::from_millis(50);
/// Close code for a frame past the size limit (RFC 6455 "message too big").
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a broken websocket frame.
const CLOSE_PROTOCOL: u16 = 1002;
/// Close code after too many frames before `module_start` (policy).
const CLOSE_POLICY: u16 = 1008;
/// Frames the outbox holds beyond `max_pending_calls` (responses to the
/// module's `call_module` requests, relayed messages).
const OUTBOX_SLACK: usize = 64;

/// One connection's state.
pub(super) struct Conn {
    pub(super) state: Arc<AppState>,
    pub(super) external: Arc<External>,
    /// The name sse-platform's upgrade body claimed (not trusted: a
    /// frame's origin must match it, and the frame must verify).
    claimed: Option<String>,
    /// Set by a successful `module_start`.
    pub(super) link: Option<Arc<Link>>,
    /// The recognized module's keys, read at `module_start`.
    keys: Vec<VerifyingKey>,
    /// The challenge every frame must carry, in `required` mode.
    challenge: Option<String>,
    pub(super) outbox: mpsc::Sender<String>,
    pub(super) key: SigningKey,
    frames_before_start: u32,
    /// This connection's publishes in the current second.
    pub(super) publishes: Window,
}

/// What to do after a frame.
enum Next {
    Reply(Value),
    Quiet,
    Close(Value, u16),
}

/// Runs one module connection until it closes or the host shuts down.
pub(super) async fn run(
    socket: WebSocket,
    state: Arc<AppState>,
    external: Arc<External>,
    claimed: Option<String>,
    key: SigningKey,
    slot: Slot,
) {
    let _slot = slot;
    let config = state.config.load_full();
    let (tx, mut rx) = mpsc::channel(config.external.max_pending_calls + OUTBOX_SLACK);
    let (mut sink, mut stream) = socket.split();
    let challenge = if config.external.challenge == ChallengeMode::Required {
        let mut nonce = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut nonce) {
            tracing::error!(
                "external module connection closed: no randomness for its challenge: {e}"
            );
            return;
        }
        Some(hex::encode(nonce))
    } else {
        None
    };
    let mut conn = Conn {
        state: state.clone(),
        external,
        claimed,
        link: None,
        keys: Vec::new(),
        challenge,
        outbox: tx,
        key,
        frames_before_start: 0,
        publishes: Window::default(),
    };
    if let Some(challenge) = &conn.challenge {
        let hello = json!({"type": "challenge", "challenge": challenge});
        if sink
            .send(text(envelope::seal(&conn.key, &hello)))
            .await
            .is_err()
        {
            return;
        }
    }
    let mut shutdown = state.shutdown.clone();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            read = stream.next() => {
                let next = match read {
                    Some(Ok(Message::Text(t))) => conn.on_text(t.as_str()),
                    Some(Ok(Message::Binary(_))) => Next::Reply(json!({
                        "type": "message_format_error",
                        "description": "frames are JSON text, not binary",
                    })),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Next::Quiet,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => read_failed(&e, conn.state.config.load().external.max_frame_bytes),
                };
                match next {
                    Next::Quiet => {}
                    Next::Reply(body) => {
                        if sink.send(text(envelope::seal(&conn.key, &body))).await.is_err() {
                            break;
                        }
                    }
                    Next::Close(body, code) => {
                        let _ = sink.send(text(envelope::seal(&conn.key, &body))).await;
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame {
                                code,
                                reason: Utf8Bytes::from_static("refused"),
                            })))
                            .await;
                        break;
                    }
                }
            }
            Some(frame) = rx.recv() => {
                if sink.send(text(frame)).await.is_err() {
                    break;
                }
            }
            _ = sweep.tick() => {
                if let Some(link) = &conn.link {
                    link.pending.expire(Instant::now(), &link.module);
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    if let Some(link) = conn.link.take() {
        link.close();
        let grace = conn.state.config.load().external.grace;
        conn.external.disconnected(&link, grace);
        tracing::info!(module = %link.module, "external module disconnected");
    }
}

fn text(frame: String) -> Message {
    Message::Text(frame.into())
}

/// The reply to a read error: a frame past the limit is said so, then the
/// socket is closed with 1009; other errors (a broken frame) with 1002.
/// axum hides tungstenite's error type, so its text is what tells them apart
/// ("Space limit exceeded: Message too long").
fn read_failed(error: &axum::Error, limit: usize) -> Next {
    let shown = error.to_string();
    let (description, code) = if shown.contains("too long") || shown.contains("Space limit") {
        (
            format!(
                "the frame is larger than {limit} bytes ([external] max_frame_bytes); the connection is closed"
            ),
            CLOSE_TOO_BIG,
        )
    } else {
        (format!("the connection failed: {shown}"), CLOSE_PROTOCOL)
    };
    Next::Close(
        json!({"type": "message_format_error", "description": description}),
        code,
    )
}

/// An error frame for the frame `resolve_id` (when known).
pub(super) fn error(kind: &str, reason: &str, resolve_id: Option<&str>) -> Value {
    let mut body = json!({"type": kind, "reason": reason});
    if let Some(id) = resolve_id {
        body["resolve_id"] = id.into();
    }
    body
}

impl Conn {
    /// The recognized module's name.
    pub(super) fn name(&self) -> Option<&str> {
        self.link.as_ref().map(|l| l.module.as_str())
    }

    fn on_text(&mut self, text: &str) -> Next {
        if self.link.is_none() {
            self.frames_before_start += 1;
            if self.frames_before_start > MAX_FRAMES_BEFORE_START {
                return Next::Close(
                    error(
                        "protocol_error",
                        "too many frames without a successful module_start; the connection is closed",
                        None,
                    ),
                    CLOSE_POLICY,
                );
            }
        }
        match self.verified(text) {
            Ok(frame) => match self.request(frame) {
                Some(reply) => Next::Reply(reply),
                None => Next::Quiet,
            },
            Err(reply) => Next::Reply(reply),
        }
    }

    /// Steps 2 to 7 of the module docs: the frame, or the error frame.
    fn verified(&mut self, text: &str) -> Result<Inbound, Value> {
        let claimed = envelope::parse(text).map_err(|e| {
            // Echo the frame's resolve_id when it has a usable one, so the
            // module can tell which request failed.
            let mut body = e.reply();
            if let Some(id) = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("resolve_id")?.as_str().map(str::to_owned))
                .filter(|id| id.len() <= envelope::MAX_RESOLVE_ID)
            {
                body["resolve_id"] = id.into();
            }
            body
        })?;
        let rid = Some(claimed.resolve_id.clone());
        let rid = rid.as_deref();
        let expected = self.name().or(self.claimed.as_deref());
        if let Some(name) = expected
            && claimed.origin != name
        {
            return Err(error(
                "protocol_error",
                &format!(
                    "origin {:?} is not the module this connection is for ({name:?}); each module connects on its own socket",
                    claimed.origin
                ),
                rid,
            ));
        }
        let keys = if self.link.is_some() {
            self.keys.clone()
        } else {
            self.keys_of(&claimed.origin)
        };
        let mut reply = |e: envelope::EnvelopeError| {
            let mut body = e.reply();
            if let Some(id) = rid {
                body["resolve_id"] = id.into();
            }
            body
        };
        let frame = claimed.verify(&keys).map_err(&mut reply)?;
        if let Some(challenge) = &self.challenge
            && frame.body.get("challenge").and_then(Value::as_str) != Some(challenge)
        {
            return Err(error(
                "protocol_error",
                "this host requires the connection's challenge (the first frame it sent) signed into every frame as \"challenge\"",
                rid,
            ));
        }
        let config = self.state.config.load();
        self.external
            .replay
            .check(
                &frame.origin,
                &frame.resolve_id,
                Instant::now(),
                config.external.replay_window,
                config.external.replay_max_ids,
            )
            .map_err(|e| error("replay", &e.to_string(), rid))?;
        if self.link.is_none() && frame.kind() != "module_start" {
            return Err(error(
                "protocol_error",
                "send module_start first: no other request is accepted before the module is recognized",
                rid,
            ));
        }
        Ok(frame)
    }

    /// `module`'s verify keys from the configured folders, with their
    /// trust checks; none when they cannot be read (logged).
    pub(super) fn keys_of(&self, module: &str) -> Vec<VerifyingKey> {
        let folders = self.state.config.load().modules.verify_keys.clone();
        match Keyring::load(&folders) {
            Ok(ring) => ring.keys_for(module).to_vec(),
            Err(e) => {
                tracing::warn!("external module {module}: verify keys cannot be read: {e}");
                Vec::new()
            }
        }
    }

    /// Binds the connection to `link` (a successful `module_start`).
    pub(super) fn recognized(&mut self, link: Arc<Link>, keys: Vec<VerifyingKey>) {
        self.link = Some(link);
        self.keys = keys;
    }
}
