//! What a session does with each client frame: subscribe, unsubscribe,
//! call, status, ping.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use modhost_plugin_api::ErrorCode;

use crate::{
    auth::Principal,
    broker::{CallRequest, Discard},
    config::Limits,
    modules::{CallFailure, CallSink},
    protocol::{self, ClientFrame, DecodeError},
    rooms::{IndexError, Room},
    state::AppState,
};

use super::outbox::Outbox;

/// Completed calls whose final reply a session keeps for repeats.
const REMEMBERED_CALLS: usize = 1024;

/// What a session knows about itself.
pub(super) struct SessionContext {
    /// Session number.
    pub id: u64,
    /// Session name sent to the client.
    pub name: String,
    /// Who is connected.
    pub principal: Principal,
    /// Room patterns the user may subscribe to.
    pub allowed: Vec<Room>,
    /// The session's outbox.
    pub outbox: Outbox,
    /// Shared host state.
    pub state: Arc<AppState>,
    /// Limits at connect time.
    pub limits: Limits,
}

/// The state of one call `requestId` in this session.
enum CallRecord {
    /// Running; its reply will arrive.
    Running,
    /// Done; a repeat gets this final frame again.
    Done(String),
}

/// Calls of a session by `requestId`, for exactly-once execution.
#[derive(Default)]
struct CallLog {
    records: HashMap<Arc<str>, CallRecord>,
    done_order: VecDeque<Arc<str>>,
}

impl CallLog {
    fn complete(&mut self, request_id: &Arc<str>, frame: String) {
        self.records
            .insert(request_id.clone(), CallRecord::Done(frame));
        self.done_order.push_back(request_id.clone());
        while self.done_order.len() > REMEMBERED_CALLS {
            if let Some(old) = self.done_order.pop_front() {
                self.records.remove(&old);
            }
        }
    }
}

/// Shared between the session and the sinks of its calls; survives a
/// resume so a repeated `requestId` still runs once.
#[derive(Default)]
pub(super) struct CallShared {
    log: Mutex<CallLog>,
    in_flight: AtomicUsize,
}

/// A connected, authenticated client.
pub(super) struct Session {
    /// Who and where.
    pub ctx: SessionContext,
    calls: Arc<CallShared>,
    rate_window: Instant,
    rate_used: u32,
}

impl Session {
    /// A session for `ctx`; `calls` carries the call log of a resumed one.
    pub(super) fn new(ctx: SessionContext, calls: Option<Arc<CallShared>>) -> Self {
        Self {
            ctx,
            calls: calls.unwrap_or_default(),
            rate_window: Instant::now(),
            rate_used: 0,
        }
    }

    /// The session's call log (kept when the session is parked).
    pub(super) fn calls(&self) -> &Arc<CallShared> {
        &self.calls
    }

    /// The first frame (`is_authorized`, with the resume token) and the
    /// resource offer.
    pub(super) fn hello(&self, resume_token: Option<&str>) -> [String; 2] {
        let p = &self.ctx.principal;
        [
            protocol::authorized(&p.allowed_rooms, &p.user, &self.ctx.name, resume_token),
            self.resource_offer(),
        ]
    }

    /// Sends the modules and commands this user may call.
    pub(super) fn send_resource_offer(&self) {
        self.ctx.outbox.text(self.resource_offer());
    }

    fn resource_offer(&self) -> String {
        let p = &self.ctx.principal;
        let modules: Vec<serde_json::Value> = self
            .ctx
            .state
            .registry
            .running()
            .iter()
            .filter_map(|g| {
                let commands: Vec<serde_json::Value> = g
                    .manifest
                    .commands
                    .iter()
                    .filter(|c| {
                        c.min_role.is_empty()
                            || p.roles
                                .iter()
                                .any(|r| r == c.min_role.as_str() || r == "admin")
                    })
                    .map(|c| {
                        serde_json::json!({
                            "name": c.name.as_str(),
                            "params": c.params.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                            "needs_reply": c.needs_reply,
                            "streams": c.streams,
                        })
                    })
                    .collect();
                (!commands.is_empty()).then(|| {
                    serde_json::json!({
                        "name": g.name,
                        "version": g.manifest.version.as_str(),
                        "commands": commands,
                    })
                })
            })
            .collect();
        protocol::resource_offer(&serde_json::Value::Array(modules))
    }

    /// Handles one text frame.
    pub(super) fn handle_text(&mut self, text: &str) {
        match protocol::decode(text, self.ctx.limits.max_json_depth) {
            Ok(frame) => self.handle(frame),
            Err(DecodeError::TooDeep { .. }) => self.reply(protocol::error("too-deep", None)),
            Err(_) => self.reply(protocol::error("non-json-message", None)),
        }
    }

    fn reply(&self, frame: String) {
        self.ctx.outbox.reply(frame);
    }

    fn handle(&mut self, frame: ClientFrame) {
        match frame {
            ClientFrame::Ping => self.reply(protocol::PONG.to_owned()),
            ClientFrame::Subscribe { room, request_id } => self.subscribe(room, request_id),
            ClientFrame::Unsubscribe { request_id } => match request_id {
                None => self.reply(protocol::error("no-request-id", None)),
                Some(rid) => {
                    let frame = if self.ctx.state.fanout.unsubscribe(self.ctx.id, &rid) {
                        protocol::success(Some(&rid))
                    } else {
                        protocol::error("not-subscribed", Some(&rid))
                    };
                    self.reply(frame);
                }
            },
            ClientFrame::Call {
                module,
                command,
                params,
                request_id,
            } => self.call(module, command, params, request_id),
            ClientFrame::Status => self.status(),
            ClientFrame::Unknown => self.reply(protocol::error("message-type-not-allowed", None)),
        }
    }

    fn subscribe(&mut self, room: serde_json::Value, request_id: Option<String>) {
        let Some(rid) = request_id else {
            return self.reply(protocol::error("no-request-id", None));
        };
        let room = match Room::parse(&room) {
            Ok(room) => room,
            Err(_) => return self.reply(protocol::error("invalid-room", Some(&rid))),
        };
        if !self.ctx.allowed.iter().any(|a| a.permits(&room)) {
            return self.reply(protocol::error("room-not-found", Some(&rid)));
        }
        let fanout = &self.ctx.state.fanout;
        if fanout.session_subscriptions(self.ctx.id) >= self.ctx.limits.max_subscriptions {
            return self.reply(protocol::error("too-many-subscriptions", Some(&rid)));
        }
        let frame = match fanout.subscribe(
            self.ctx.id,
            Arc::from(rid.as_str()),
            room,
            self.ctx.outbox.clone(),
        ) {
            Ok(()) => protocol::success(Some(&rid)),
            Err(IndexError::RequestIdInUse) => protocol::error("request-id-in-use", Some(&rid)),
            #[allow(unreachable_patterns)]
            Err(_) => protocol::error("invalid-room", Some(&rid)),
        };
        self.reply(frame);
    }

    fn status(&self) {
        if !self.ctx.principal.is_admin() {
            return self.reply(protocol::error("forbidden", None));
        }
        let state = &self.ctx.state;
        let c = &state.sessions.counters;
        let status = serde_json::json!({
            "open_connections": state.sessions.open(),
            "num_rooms": state.fanout.num_rooms(),
            "num_subscriptions": state.fanout.num_subscriptions(),
            "online_since": state.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "ws_messages_received": c.ws_messages_received.load(Ordering::Relaxed),
            "ws_messages_send": c.ws_messages_send.load(Ordering::Relaxed),
            "ws_messages_send_error": c.ws_messages_send_error.load(Ordering::Relaxed),
            "slow_consumers_closed": c.slow_consumers_closed.load(Ordering::Relaxed),
            "connections_refused": c.connections_refused.load(Ordering::Relaxed),
            "modules": state.registry.running().len(),
        });
        self.reply(status.to_string());
    }

    fn within_rate(&mut self) -> bool {
        if self.rate_window.elapsed().as_secs() >= 1 {
            self.rate_window = Instant::now();
            self.rate_used = 0;
        }
        self.rate_used += 1;
        self.rate_used <= self.ctx.limits.calls_per_second
    }

    fn call(
        &mut self,
        module: Option<String>,
        command: Option<String>,
        params: Option<Box<serde_json::value::RawValue>>,
        request_id: Option<String>,
    ) {
        let Some(rid) = request_id else {
            return self.reply(protocol::error("no-request-id", None));
        };
        let rid: Arc<str> = Arc::from(rid);
        {
            let log = self.calls.log.lock().unwrap_or_else(|p| p.into_inner());
            match log.records.get(&rid) {
                // The first call's reply answers the repeat too.
                Some(CallRecord::Running) => return,
                Some(CallRecord::Done(frame)) => {
                    let frame = frame.clone();
                    drop(log);
                    return self.reply(frame);
                }
                None => {}
            }
        }
        let fail =
            |code: ErrorCode, message: String| protocol::call_error(&rid, code.as_str(), &message);
        let (Some(module), Some(command)) = (module, command) else {
            return self.reply(fail(
                ErrorCode::UnknownCommand,
                "a call needs `module` and `command`".into(),
            ));
        };
        if !self.within_rate() {
            return self.reply(fail(
                ErrorCode::RateLimited,
                format!(
                    "more than {} calls per second",
                    self.ctx.limits.calls_per_second
                ),
            ));
        }
        if self.calls.in_flight.load(Ordering::Acquire) >= self.ctx.limits.max_calls_in_flight {
            return self.reply(fail(
                ErrorCode::RateLimited,
                format!(
                    "more than {} calls in flight",
                    self.ctx.limits.max_calls_in_flight
                ),
            ));
        }
        let p = &self.ctx.principal;
        let params = params.as_deref().map(|p| p.get());
        let req = CallRequest::by_user(p, &self.ctx.name, &module, &command, params);
        self.calls
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .records
            .insert(rid.clone(), CallRecord::Running);
        self.calls.in_flight.fetch_add(1, Ordering::AcqRel);
        let outbox = self.ctx.outbox.clone();
        let shared = self.calls.clone();
        // The broker builds this sink exactly once, refusals included, and
        // the sink answers the client; nothing is left to answer here.
        self.ctx.state.broker.call(req, |info| {
            if info.needs_reply {
                Box::new(SessionSink {
                    outbox,
                    request_id: rid,
                    streams: info.streams,
                    shared,
                })
            } else {
                // Accepted now: ack it and record the ack for repeats.
                let ack = protocol::ack(&rid);
                outbox.reply(ack.clone());
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                shared
                    .log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .complete(&rid, ack);
                Box::new(Discard)
            }
        });
    }
}

/// Answers a call into the session's outbox and records the final frame.
struct SessionSink {
    outbox: Outbox,
    request_id: Arc<str>,
    streams: bool,
    shared: Arc<CallShared>,
}

impl CallSink for SessionSink {
    /// Stream items come at the module's pace, not the client's: they
    /// count against the outbox bound like room messages.
    fn item(&mut self, result: &str) {
        self.outbox
            .text(reply_frame(&self.request_id, result, Some(false)));
    }

    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let frame = match outcome {
            Ok(result) => reply_frame(&self.request_id, result, self.streams.then_some(true)),
            Err(f) => protocol::call_error(&self.request_id, f.code.as_str(), &f.message),
        };
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .complete(&self.request_id, frame.clone());
        self.outbox.reply(frame);
    }
}

/// A reply frame for a module's result text. A result that is not valid
/// JSON (a module can send anything across the ABI) becomes a module error
/// rather than a broken frame.
fn reply_frame(request_id: &str, result: &str, done: Option<bool>) -> String {
    match serde_json::from_str::<&serde_json::value::RawValue>(result) {
        Ok(raw) => protocol::reply(request_id, raw, done),
        Err(e) => protocol::call_error(
            request_id,
            ErrorCode::ModuleError.as_str(),
            &format!("the module returned invalid JSON: {e}"),
        ),
    }
}
