//! The seam between what a session says and how it is written: a session
//! speaks through the [`Dialect`] chosen when its connection is upgraded
//! (DESIGN §5), so no command writes JSON by hand. Two live beside each
//! other: [`Extended`](super::Extended) (`modhost.v1`) and
//! [`Legacy`](super::Legacy) (high-templar 3.1 exactly).
//!
//! Room messages are not here: a publish is encoded once for every
//! subscriber ([`PublishFrame`](super::PublishFrame)), in the form every
//! dialect shares.

use std::time::SystemTime;

use modhost_plugin_api::ErrorCode;
use serde_json::{Value, value::RawValue};

use super::{StreamPosition, encode, error::WireError};

/// The websocket subprotocol a client offers to get the extended dialect.
pub const SUBPROTOCOL: &str = "modhost.v1";

/// The host's counters, as `{"type":"status"}` reports them.
#[derive(Debug, Clone, Default)]
pub struct StatusReport {
    /// Open websocket connections.
    pub open_connections: usize,
    /// Rooms with at least one subscriber.
    pub num_rooms: usize,
    /// Room subscriptions.
    pub num_subscriptions: usize,
    /// When the host started.
    pub online_since: Option<SystemTime>,
    /// Room messages received from the AMQP trigger source.
    pub amqp_messages_received: u64,
    /// Client frames received.
    pub ws_messages_received: u64,
    /// Room messages queued for delivery.
    pub ws_messages_send: u64,
    /// Room messages that could not be queued (slow or gone clients).
    pub ws_messages_send_error: u64,
    /// Room messages queued but not yet written.
    pub ws_messages_send_queued: u64,
    /// Clients closed for not reading.
    pub slow_consumers_closed: u64,
    /// Connections refused at the connection limit.
    pub connections_refused: u64,
    /// Running modules.
    pub modules: usize,
}

/// The frames a session sends, in one wire dialect.
pub trait Dialect: Send + Sync + 'static {
    /// The dialect's name, for logs and the admin API.
    fn name(&self) -> &'static str;

    /// Whether sessions get a resume token, are parked when they drop and
    /// receive unrequested frames other than room messages (offers,
    /// pushes). A dialect that cannot resume parks nothing.
    fn resumes(&self) -> bool;

    /// The first frame of an authorized connection.
    fn authorized(
        &self,
        allowed_rooms: &[Value],
        user: &str,
        session: &str,
        resume_token: Option<&str>,
    ) -> String;

    /// The frame sent to a refused client, and the close that follows it.
    fn unauthorized(&self) -> (String, u16, &'static str);

    /// The modules and commands a user may call (`modules` is the JSON
    /// array); `None` when the dialect sends no offer.
    fn resource_offer(&self, modules: &Value) -> Option<String>;

    /// A module's message to the user's sessions; `None` when the dialect
    /// takes none.
    fn push(&self, module: &str, data: &RawValue) -> Option<String>;

    /// How a resume went; `None` when the dialect does not resume.
    fn resumed(&self, complete: bool) -> Option<String>;

    /// A resume that did not happen (`reason`); this is a new session.
    fn resume_failed(&self, reason: &str) -> Option<String>;

    /// A subscribe or unsubscribe that succeeded.
    fn success(&self, request_id: Option<&str>) -> String;

    /// Whether room messages carry their history `offset`, a subscribe
    /// reply the room's position and a subscribe's `since` is honoured.
    /// high-templar's frames have none of these.
    fn offsets(&self) -> bool {
        false
    }
    /// The reason sent with the 1001 close when the host shuts down.
    /// high-templar's clients keep the words they always got; `modhost.v1`
    /// adds a reconnect hint.
    fn shutdown_reason(&self) -> &'static str {
        "server shutting down"
    }
    /// A subscribe that succeeded, with the position in the room's history
    /// when it has one.
    fn subscribed(&self, request_id: Option<&str>, position: Option<&StreamPosition>) -> String {
        let _ = position;
        self.success(request_id)
    }
    /// The end of a subscription's recovery (`complete`: every missed
    /// publication was sent); `None` when the dialect does not recover.
    fn recovered(&self, request_id: &str, complete: bool) -> Option<String> {
        let _ = (request_id, complete);
        None
    }
    /// A refused client frame.
    fn error(&self, error: WireError, request_id: Option<&str>) -> String;

    /// Subscription `request_id` was dropped because the user's rights no
    /// longer allow its room (a role taken away). `None`: the dialect
    /// cannot say which subscription ended, so the session is closed
    /// instead (4003).
    fn subscription_revoked(&self, request_id: &str) -> Option<String>;

    /// A frame that could not be read as a command (not JSON, unknown
    /// `type`), on the connection named `session`.
    fn unreadable(&self, error: WireError, session: &str) -> String;

    /// The answer to `status`.
    fn status(&self, report: &StatusReport) -> String;

    // Calls are modhost's own in every dialect (high-templar has none), as
    // is the keep-alive both share.

    /// A call's result (`done`: `Some` for each part of a stream).
    fn reply(&self, request_id: &str, result: &RawValue, done: Option<bool>) -> String {
        encode::reply(request_id, result, done)
    }

    /// A fire-and-forget call was accepted.
    fn ack(&self, request_id: &str) -> String {
        encode::ack(request_id)
    }

    /// A call failed.
    fn call_error(&self, request_id: &str, code: ErrorCode, message: &str) -> String {
        encode::call_error(request_id, code.as_str(), message)
    }

    /// The answer to the raw keep-alive `ping`.
    fn pong(&self) -> &'static str {
        super::PONG
    }
}
