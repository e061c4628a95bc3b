//! The state every request handler shares, and the host services modules
//! call back into.

use std::{
    collections::HashSet,
    sync::{Arc, Weak, atomic::Ordering},
    time::SystemTime,
};

use arc_swap::ArcSwap;
use modhost_plugin_api::ErrorCode;
use serde_json::value::RawValue;

use crate::{
    accounts::Accounts,
    auth::{ApiTokens, Authenticator},
    broker::{Broker, CallRequest},
    config::Config,
    fanout::FanoutEngine,
    modules::{CallContext, CallFailure, CallSink, HostServices, Registry},
    protocol::MAX_PUBLISH_BYTES,
    rooms::Room,
    sessions::Sessions,
};

/// Shared by every connection and request.
pub struct AppState {
    /// The current configuration (replaced on reload).
    pub config: ArcSwap<Config>,
    /// How websocket clients are authenticated.
    pub auth: ArcSwap<Authenticator>,
    /// The host's own users (`/auth/*`), when it keeps them.
    pub accounts: Option<Arc<Accounts>>,
    /// The HTTP API's admin and trigger tokens, hashed when `config` is
    /// stored.
    pub api_tokens: ArcSwap<ApiTokens>,
    /// Room subscriptions: who gets each publish.
    pub fanout: Box<dyn FanoutEngine>,
    /// Open sessions and traffic counters.
    pub sessions: Sessions,
    /// Routes calls to modules.
    pub broker: Broker,
    /// Loaded modules.
    pub registry: Arc<Registry>,
    /// When the host started.
    pub started: SystemTime,
    /// Flips to true when the host begins shutting down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Marked changed each time a reloaded config has been stored in
    /// `config`, for the parts that build long-lived things from it (the
    /// AMQP source's connection) instead of reading it per use.
    pub config_applied: tokio::sync::watch::Sender<()>,
}

/// Errors of a publish request.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// `rooms` is missing or not an array of room objects.
    #[error("rooms not specified")]
    Rooms,
    /// A room is not a valid room object.
    #[error("invalid room: {0}")]
    InvalidRoom(String),
    /// More rooms than `[limits] max_rooms_per_publish`.
    #[error(
        "too many rooms: {count} in one publish, the limit is {limit} ([limits] max_rooms_per_publish); publish to fewer rooms, or use \"*\" as a value to reach many"
    )]
    TooManyRooms {
        /// Rooms the publish named.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
}

impl AppState {
    /// Parses a JSON array of at most `limit` rooms, each room once.
    ///
    /// The count is checked before any room is parsed, and repeats are
    /// dropped before the index sees them: every room named is a walk of
    /// the subscription index under the fan-out lock, and one wildcard room
    /// named 1,700 times once held that lock for 28 s.
    pub fn parse_rooms(rooms: &serde_json::Value, limit: usize) -> Result<Vec<Room>, PublishError> {
        let list = rooms.as_array().ok_or(PublishError::Rooms)?;
        if list.len() > limit {
            return Err(PublishError::TooManyRooms {
                count: list.len(),
                limit,
            });
        }
        let mut seen = HashSet::with_capacity(list.len());
        let mut distinct = Vec::with_capacity(list.len());
        for r in list {
            let room = Room::parse(r).map_err(|e| PublishError::InvalidRoom(e.to_string()))?;
            if seen.insert(room.clone()) {
                distinct.push(room);
            }
        }
        Ok(distinct)
    }

    /// The most rooms one publish may name now (`[limits]`, live).
    pub fn max_rooms_per_publish(&self) -> usize {
        self.config.load().limits.max_rooms_per_publish
    }

    /// Publishes `data` to `rooms`; returns the deliveries.
    pub fn publish(&self, rooms: &[Room], data: &RawValue) -> u64 {
        let counters = &self.sessions.counters;
        counters.publishes.fetch_add(1, Ordering::Relaxed);
        let delivery = self.fanout.publish(rooms, data);
        counters
            .ws_messages_send
            .fetch_add(delivery.delivered, Ordering::Relaxed);
        counters
            .ws_messages_send_error
            .fetch_add(delivery.dropped, Ordering::Relaxed);
        delivery.delivered
    }
}

/// [`HostServices`] backed by the app state. Holds it weakly: the registry
/// (owned by the state) holds this.
pub struct Services(pub Weak<AppState>);

impl Services {
    fn state(&self) -> Result<Arc<AppState>, CallFailure> {
        self.0.upgrade().ok_or_else(|| {
            CallFailure::new(ErrorCode::ModuleUnavailable, "the host is shutting down")
        })
    }
}

fn bad_input(message: String) -> CallFailure {
    CallFailure::new(ErrorCode::MissingParam, message)
}

/// Refuses `data` (a module's publish or push) past the largest frame a
/// client may have to receive.
fn within_publish_limit(what: &str, data: &str) -> Result<(), CallFailure> {
    if data.len() > MAX_PUBLISH_BYTES {
        return Err(CallFailure::new(
            ErrorCode::TooLarge,
            format!(
                "{what} is {} bytes; the limit is {MAX_PUBLISH_BYTES}",
                data.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses a publish, made while a module handles a user's call, to a room
/// that user could not subscribe to: the module would otherwise be a way
/// around `allowed_rooms` (and the trigger token) for any user.
fn within_callers_rooms(
    module: &str,
    on_behalf: Option<&CallContext>,
    rooms: &[Room],
) -> Result<(), CallFailure> {
    let Some(context) = on_behalf else {
        return Ok(());
    };
    match rooms.iter().find(|room| !context.may_publish_to(room)) {
        None => Ok(()),
        Some(room) => Err(CallFailure::new(
            ErrorCode::Forbidden,
            format!(
                "{module} publishes for {:?} here, who may not subscribe to {room}; nothing was published",
                context.caller.user.as_str()
            ),
        )),
    }
}

impl HostServices for Services {
    fn publish(
        &self,
        module: &str,
        on_behalf: Option<&CallContext>,
        rooms: &str,
        data: &str,
    ) -> Result<u64, CallFailure> {
        let state = self.state()?;
        within_publish_limit("publish data", data)?;
        let rooms: serde_json::Value = serde_json::from_str(rooms)
            .map_err(|e| bad_input(format!("rooms are not valid JSON: {e}")))?;
        let rooms =
            AppState::parse_rooms(&rooms, state.max_rooms_per_publish()).map_err(|e| match e {
                PublishError::TooManyRooms { .. } => {
                    CallFailure::new(ErrorCode::TooLarge, e.to_string())
                }
                e => bad_input(e.to_string()),
            })?;
        within_callers_rooms(module, on_behalf, &rooms)?;
        let data: &RawValue = serde_json::from_str(data)
            .map_err(|e| bad_input(format!("data is not valid JSON: {e}")))?;
        Ok(state.publish(&rooms, data))
    }

    fn send_to_user(
        &self,
        module: &str,
        on_behalf: Option<&CallContext>,
        user: &str,
        data: &str,
    ) -> Result<u64, CallFailure> {
        let state = self.state()?;
        if let Some(context) = on_behalf
            && !context.may_push_to(user)
        {
            return Err(CallFailure::new(
                ErrorCode::Forbidden,
                format!(
                    "{module} pushes for {:?} here, who may push only to themselves (another user needs an admin, or an admin-only command); nothing was pushed",
                    context.caller.user.as_str()
                ),
            ));
        }
        within_publish_limit("pushed data", data)?;
        let data: &RawValue = serde_json::from_str(data)
            .map_err(|e| bad_input(format!("data is not valid JSON: {e}")))?;
        Ok(state.sessions.send_to_user(user, module, data))
    }

    fn call_from_module(
        &self,
        from: &str,
        on_behalf: Option<&CallContext>,
        target: &str,
        command: &str,
        params: &str,
        sink: Box<dyn CallSink>,
    ) {
        let state = match self.state() {
            Ok(state) => state,
            Err(failure) => return sink.finish(Err(failure)),
        };
        let req = CallRequest::by_module(from, on_behalf, target, command, params);
        // The broker answers `sink` exactly once, refusals included.
        state.broker.call(req, |info| {
            if info.needs_reply {
                sink
            } else {
                Box::new(AckNow(sink))
            }
        });
    }
}

/// For a fire-and-forget command called by a module: answer `null` at once.
struct AckNow(Box<dyn CallSink>);

impl CallSink for AckNow {
    fn item(&mut self, _result: &str) {}
    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let _ = outcome;
        self.0.finish(Ok("null"));
    }
}
