//! The seam between what a session says and how it is written: a session
//! speaks through the [`Dialect`] chosen when its connection is upgraded,
//! so no command writes JSON by hand and a second dialect (high-templar
//! 3.1 exactly, DESIGN §5) sits beside today's without touching them.
//!
//! Room messages are not here: a publish is encoded once for every
//! subscriber ([`PublishFrame`](super::PublishFrame)), in the form every
//! dialect shares.

use modhost_plugin_api::ErrorCode;
use serde_json::{Value, value::RawValue};

use super::{encode, error::WireError};

/// The frames a session sends, in one wire dialect.
pub trait Dialect: Send + Sync + 'static {
    /// The first frame of an authorized connection.
    fn authorized(
        &self,
        allowed_rooms: &[Value],
        user: &str,
        session: &str,
        resume_token: Option<&str>,
    ) -> String;

    /// The frame sent to a refused client before it is closed.
    fn unauthorized(&self) -> String;

    /// The modules and commands a user may call (`modules` is the JSON
    /// array); `None` when the dialect sends no offer.
    fn resource_offer(&self, modules: &Value) -> Option<String>;

    /// How a resume went; `None` when the dialect does not resume.
    fn resumed(&self, complete: bool) -> Option<String>;

    /// A resume that did not happen (`reason`); this is a new session.
    fn resume_failed(&self, reason: &str) -> Option<String>;

    /// A subscribe or unsubscribe that succeeded.
    fn success(&self, request_id: Option<&str>) -> String;

    /// A refused client frame.
    fn error(&self, error: WireError, request_id: Option<&str>) -> String;

    /// A call's result (`done`: `Some` for each part of a stream).
    fn reply(&self, request_id: &str, result: &RawValue, done: Option<bool>) -> String;

    /// A fire-and-forget call was accepted.
    fn ack(&self, request_id: &str) -> String;

    /// A call failed.
    fn call_error(&self, request_id: &str, code: ErrorCode, message: &str) -> String;

    /// The answer to `status`: the counters, as a JSON object.
    fn status(&self, counters: &Value) -> String;

    /// The answer to the raw keep-alive `ping`.
    fn pong(&self) -> &'static str;
}

/// modhost's protocol as served on `/ws/` today (DESIGN §5): the hello
/// carries user, session and resume token, a resource offer follows, and
/// every reply echoes its `requestId`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extended;

impl Dialect for Extended {
    fn authorized(
        &self,
        allowed_rooms: &[Value],
        user: &str,
        session: &str,
        resume_token: Option<&str>,
    ) -> String {
        encode::authorized(allowed_rooms, user, session, resume_token)
    }

    fn unauthorized(&self) -> String {
        encode::unauthorized()
    }

    fn resource_offer(&self, modules: &Value) -> Option<String> {
        Some(encode::resource_offer(modules))
    }

    fn resumed(&self, complete: bool) -> Option<String> {
        Some(encode::resumed(complete))
    }

    fn resume_failed(&self, reason: &str) -> Option<String> {
        Some(encode::resume_failed(reason))
    }

    fn success(&self, request_id: Option<&str>) -> String {
        encode::success(request_id)
    }

    fn error(&self, error: WireError, request_id: Option<&str>) -> String {
        encode::error(error.as_str(), request_id)
    }

    fn reply(&self, request_id: &str, result: &RawValue, done: Option<bool>) -> String {
        encode::reply(request_id, result, done)
    }

    fn ack(&self, request_id: &str) -> String {
        encode::ack(request_id)
    }

    fn call_error(&self, request_id: &str, code: ErrorCode, message: &str) -> String {
        encode::call_error(request_id, code.as_str(), message)
    }

    fn status(&self, counters: &Value) -> String {
        counters.to_string()
    }

    fn pong(&self) -> &'static str {
        super::decode::PONG
    }
}
