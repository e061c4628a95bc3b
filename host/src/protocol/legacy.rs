//! [`Legacy`]: high-templar 3.1 exactly, for clients that offer no
//! subprotocol (DESIGN §5). The same frames and fields as high-templar,
//! and nothing the client did not ask for: no resource offer, no extra
//! hello fields, no `requestId` on `{"code": …}` replies, no resume, and
//! `{"is_authorized": false}` followed by close 1000.
//!
//! Frames high-templar does not know (`call`) still work and are answered
//! in the modhost shape, as in [`Extended`](super::Extended).

use serde::Serialize;
use serde_json::{Value, value::RawValue};

use super::{
    dialect::{Dialect, StatusReport},
    encode,
    error::WireError,
};

/// high-templar closes a refused client normally after telling it so.
const CLOSE_NORMAL: u16 = 1000;

/// high-templar 3.1's protocol, for clients that ask for nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Legacy;

fn to_json<T: Serialize>(frame: &T) -> String {
    // Strings, numbers and `Value`s only: serializing cannot fail.
    serde_json::to_string(frame).expect("server frames always serialize")
}

impl Dialect for Legacy {
    fn name(&self) -> &'static str {
        "high-templar"
    }

    fn resumes(&self) -> bool {
        false
    }

    fn authorized(&self, allowed_rooms: &[Value], _: &str, _: &str, _: Option<&str>) -> String {
        #[derive(Serialize)]
        struct Authorized<'a> {
            is_authorized: bool,
            allowed_rooms: &'a [Value],
        }
        to_json(&Authorized {
            is_authorized: true,
            allowed_rooms,
        })
    }

    fn unauthorized(&self) -> (String, u16, &'static str) {
        (encode::unauthorized(), CLOSE_NORMAL, "")
    }

    fn resource_offer(&self, _: &Value) -> Option<String> {
        None
    }

    fn push(&self, _: &str, _: &RawValue) -> Option<String> {
        None
    }

    fn resumed(&self, _: bool) -> Option<String> {
        None
    }

    fn resume_failed(&self, _: &str) -> Option<String> {
        None
    }

    fn success(&self, _: Option<&str>) -> String {
        encode::success(None)
    }

    fn error(&self, error: WireError, _: Option<&str>) -> String {
        encode::error(error.as_str(), None)
    }

    fn subscription_revoked(&self, _: &str) -> Option<String> {
        // high-templar's errors name no `requestId`, so the client could
        // not tell which subscription ended: it is closed instead, and
        // reconnects to a hello with its new `allowed_rooms`.
        None
    }

    fn unreadable(&self, error: WireError, session: &str) -> String {
        // high-templar names the connection in these two replies.
        #[derive(Serialize)]
        struct Unreadable<'a> {
            #[serde(rename = "requestId")]
            request_id: &'a str,
            code: &'static str,
            message: &'static str,
        }
        to_json(&Unreadable {
            request_id: session,
            code: "error",
            message: error.as_str(),
        })
    }

    fn status(&self, r: &StatusReport) -> String {
        #[derive(Serialize)]
        struct Status {
            open_connections: usize,
            num_rooms: usize,
            online_since: String,
            rabbitmq_messages_received: u64,
            ws_messages_received: u64,
            ws_messages_send: u64,
            ws_messages_send_error: u64,
            ws_messages_send_queued: u64,
        }
        to_json(&Status {
            open_connections: r.open_connections,
            num_rooms: r.num_rooms,
            online_since: r.online_since.map(iso_naive).unwrap_or_default(),
            rabbitmq_messages_received: r.amqp_messages_received,
            ws_messages_received: r.ws_messages_received,
            ws_messages_send: r.ws_messages_send,
            ws_messages_send_error: r.ws_messages_send_error,
            ws_messages_send_queued: r.ws_messages_send_queued,
        })
    }
}

/// `2026-11-29T17:44:41.123456`: Python's `datetime.isoformat()` as
/// high-templar sends it (no offset; the time is UTC).
fn iso_naive(time: std::time::SystemTime) -> String {
    let text = humantime::format_rfc3339_micros(time).to_string();
    text.trim_end_matches('Z').to_owned()
}
