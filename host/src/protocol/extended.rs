//! [`Extended`]: modhost's own dialect (`modhost.v1`, DESIGN §5). The hello
//! carries user, session and resume token, a resource offer follows, every
//! reply echoes its `requestId`, and errors are typed.

use serde_json::{Value, json, value::RawValue};

use super::{
    StreamPosition,
    dialect::{Dialect, StatusReport},
    encode,
    error::WireError,
};

/// Close code after `{"is_authorized": false}`.
pub const CLOSE_UNAUTHORIZED: u16 = 4001;

/// Close code of a session whose credential stopped standing while it was
/// open: its static token removed or changed in config.toml, its token
/// expired, its account disabled or its login session logged out. The
/// client may connect again with a credential that works (4001 is only
/// ever a refusal at connect). Both dialects close with it: high-templar
/// never closed an open connection for its credential, so its clients
/// read any close as "reconnect", which is what they should do.
pub const CLOSE_REVOKED: u16 = 4003;
/// The reason `modhost.v1` clients get with the 1001 shutdown close: a
/// reconnect hint. Every client of a stopping host gets it at the same
/// moment, and a restart takes a second or more, so clients that wait a
/// random 1 to 5 s come back to a host that is up, and not all at once.
pub const SHUTDOWN_REASON: &str = "server shutting down; reconnect after a random 1-5 s";

/// modhost's protocol, for clients that offer the `modhost.v1` subprotocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extended;

impl Dialect for Extended {
    fn name(&self) -> &'static str {
        super::SUBPROTOCOL
    }

    fn resumes(&self) -> bool {
        true
    }

    fn authorized(
        &self,
        allowed_rooms: &[Value],
        user: &str,
        session: &str,
        resume_token: Option<&str>,
    ) -> String {
        encode::authorized(allowed_rooms, user, session, resume_token)
    }

    fn unauthorized(&self) -> (String, u16, &'static str) {
        (encode::unauthorized(), CLOSE_UNAUTHORIZED, "unauthorized")
    }

    fn resource_offer(&self, modules: &Value) -> Option<String> {
        Some(encode::resource_offer(modules))
    }

    fn push(&self, module: &str, data: &RawValue) -> Option<String> {
        Some(encode::push(module, data))
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

    fn offsets(&self) -> bool {
        true
    }
    fn shutdown_reason(&self) -> &'static str {
        SHUTDOWN_REASON
    }
    fn subscribed(&self, request_id: Option<&str>, position: Option<&StreamPosition>) -> String {
        match position {
            Some(position) => encode::subscribed(request_id, position),
            None => encode::success(request_id),
        }
    }
    fn recovered(&self, request_id: &str, complete: bool) -> Option<String> {
        Some(encode::recovered(request_id, complete))
    }
    fn error(&self, error: WireError, request_id: Option<&str>) -> String {
        encode::error(error.as_str(), request_id)
    }

    fn subscription_revoked(&self, request_id: &str) -> Option<String> {
        Some(encode::error(
            WireError::SubscriptionRevoked.as_str(),
            Some(request_id),
        ))
    }

    fn unreadable(&self, error: WireError, _session: &str) -> String {
        encode::error(error.as_str(), None)
    }

    fn status(&self, r: &StatusReport) -> String {
        let since = r
            .online_since
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        json!({
            "open_connections": r.open_connections,
            "num_rooms": r.num_rooms,
            "num_subscriptions": r.num_subscriptions,
            "online_since": since,
            "amqp_messages_received": r.amqp_messages_received,
            "ws_messages_received": r.ws_messages_received,
            "ws_messages_send": r.ws_messages_send,
            "ws_messages_send_error": r.ws_messages_send_error,
            "ws_messages_send_queued": r.ws_messages_send_queued,
            "slow_consumers_closed": r.slow_consumers_closed,
            "connections_refused": r.connections_refused,
            "modules": r.modules,
        })
        .to_string()
    }
}
