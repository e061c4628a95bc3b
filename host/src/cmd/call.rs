//! `{"type":"call","module":…,"command":…,"params":{…},"requestId":"7"}`:
//! a module call through the broker, run once per `requestId` in the
//! session: a repeat joins the running call or gets its final frame again
//! (or, if that frame was dropped to bound memory, a `too-large` error).

use std::sync::Arc;

use modhost_plugin_api::ErrorCode;
use serde_json::value::RawValue;

use crate::{
    broker::{CallRequest, Discard},
    modules::{CallFailure, CallSink},
    protocol::{Dialect, WireError},
    sessions::{CallState, Outbox, SessionCalls},
    signing::MAX_MODULE_NAME,
};

use super::context::Session;

/// Longest command name a call may give, in bytes. Manifests set no bound
/// of their own; the bundled modules' longest is 11 bytes. Module names
/// are bounded by the signing rule (`[a-z0-9_-]{1,64}`): a longer one can
/// name no module.
pub const MAX_COMMAND_NAME_BYTES: usize = 128;

/// A call frame.
pub struct Call {
    /// The module to call.
    pub module: Option<String>,
    /// Its command.
    pub command: Option<String>,
    /// The params as the client's JSON text.
    pub params: Option<Box<RawValue>>,
    /// The call's id, echoed on its replies.
    pub request_id: Option<String>,
}

impl Call {
    /// From the decoded frame's fields.
    pub fn from_frame(
        module: Option<String>,
        command: Option<String>,
        params: Option<Box<RawValue>>,
        request_id: Option<String>,
    ) -> Self {
        Self {
            module,
            command,
            params,
            request_id,
        }
    }

    /// Runs the call (or answers its repeat, or why it cannot run).
    pub fn apply(self, session: &mut Session) {
        let Some(rid) = self.request_id else {
            return session.refuse(WireError::NoRequestId, None);
        };
        let rid: Arc<str> = Arc::from(rid);
        let dialect = session.dialect;
        match session.calls.state(&rid) {
            // The first call's reply answers the repeat too.
            CallState::Running => return,
            CallState::Done(frame) => return session.reply(frame),
            // Running it again would break exactly-once; say so instead.
            CallState::Evicted => {
                return session.reply(dialect.call_error(
                    &rid,
                    ErrorCode::TooLarge,
                    "this call already ran; its reply was dropped to bound the \
                     session's memory and cannot be sent again (use a new requestId to call again)",
                ));
            }
            CallState::New => {}
        }
        // Refused before it ran: not remembered, so a retry with the same
        // requestId (after a rate limit, say) runs.
        let refuse = |session: &Session, code: ErrorCode, message: String| {
            session.reply(dialect.call_error(&rid, code, &message));
        };
        let (Some(module), Some(command)) = (self.module, self.command) else {
            return refuse(
                session,
                ErrorCode::UnknownCommand,
                "a call needs `module` and `command`".into(),
            );
        };
        // Refused here rather than by the broker, whose refusal would quote
        // the name back and be remembered for repeats.
        if module.len() > MAX_MODULE_NAME {
            return refuse(
                session,
                ErrorCode::UnknownModule,
                format!("module names are at most {MAX_MODULE_NAME} bytes"),
            );
        }
        if command.len() > MAX_COMMAND_NAME_BYTES {
            return refuse(
                session,
                ErrorCode::UnknownCommand,
                format!("command names are at most {MAX_COMMAND_NAME_BYTES} bytes"),
            );
        }
        if !session.within_rate() {
            let limit = session.limits.calls_per_second;
            return refuse(
                session,
                ErrorCode::RateLimited,
                format!("more than {limit} calls per second"),
            );
        }
        if session.calls.in_flight() >= session.limits.max_calls_in_flight {
            let limit = session.limits.max_calls_in_flight;
            return refuse(
                session,
                ErrorCode::RateLimited,
                format!("more than {limit} calls in flight"),
            );
        }
        let params = self.params.as_deref().map(RawValue::get);
        let req = CallRequest::by_user(
            &session.principal,
            session.allowed.clone(),
            &session.name,
            &module,
            &command,
            params,
        );
        session.calls.start(&rid);
        let outbox = session.outbox.clone();
        let calls = session.calls.clone();
        // The broker builds this sink exactly once, refusals included, and
        // the sink answers the client; nothing is left to answer here.
        session.state.broker.call(req, |info| {
            if info.needs_reply {
                Box::new(SessionSink {
                    outbox,
                    request_id: rid,
                    streams: info.streams,
                    calls,
                    dialect,
                })
            } else {
                // Accepted now: ack it and record the ack for repeats.
                let ack = dialect.ack(&rid);
                outbox.reply(ack.clone());
                calls.finish(&rid, ack);
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
    calls: Arc<SessionCalls>,
    dialect: &'static dyn Dialect,
}

impl CallSink for SessionSink {
    /// Stream items come at the module's pace, not the client's: they
    /// count against the outbox bound like room messages.
    fn item(&mut self, result: &str) {
        let frame = reply_frame(self.dialect, &self.request_id, result, Some(false));
        self.outbox.text(frame);
    }

    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let frame = match outcome {
            Ok(result) => reply_frame(
                self.dialect,
                &self.request_id,
                result,
                self.streams.then_some(true),
            ),
            Err(f) => self
                .dialect
                .call_error(&self.request_id, f.code, &f.message),
        };
        self.calls.finish(&self.request_id, frame.clone());
        self.outbox.reply(frame);
    }
}

/// A reply frame for a module's result text. A result that is not valid
/// JSON (a module can send anything across the ABI) becomes a module error
/// rather than a broken frame.
fn reply_frame(
    dialect: &dyn Dialect,
    request_id: &str,
    result: &str,
    done: Option<bool>,
) -> String {
    match serde_json::from_str::<&RawValue>(result) {
        Ok(raw) => dialect.reply(request_id, raw, done),
        Err(e) => dialect.call_error(
            request_id,
            ErrorCode::ModuleError,
            &format!("the module returned invalid JSON: {e}"),
        ),
    }
}
