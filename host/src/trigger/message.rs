//! The trigger message `{"rooms": [{...}, ...], "data": <any JSON>}`:
//! high-templar's publish body, read and published the same way whichever
//! source it came from (`POST /trigger/`, the AMQP source), so that both
//! accept and refuse exactly the same bodies.
//!
//! Each source bounds the body's size itself before calling [`publish`]:
//! the limits differ (HTTP answers 413, AMQP drops with a warning).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::state::{AppState, PublishError};

/// Why a body is not a trigger message. The `Display` texts are the ones
/// `POST /trigger/` has always answered with 400, so they stay as they are.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, or JSON that is not an object.
    #[error("invalid JSON")]
    Json,
    /// `rooms` is missing or not an array.
    #[error("rooms not specified")]
    NoRooms,
    /// `data` is missing.
    #[error("data not specified")]
    NoData,
    /// A room in `rooms` is not a valid room object.
    #[error(transparent)]
    Room(#[from] PublishError),
}

impl MessageError {
    /// What the publisher should do about it, for log lines.
    pub fn advice(&self) -> &'static str {
        match self {
            Self::Json => {
                "publish a UTF-8 JSON object: {\"rooms\": [{\"target\": \"message\"}], \"data\": ...}"
            }
            Self::NoRooms => {
                "add \"rooms\": a JSON array of room objects, e.g. [{\"target\": \"message\", \"customer\": \"1\"}]"
            }
            Self::NoData => "add \"data\": the JSON value subscribers receive (not null)",
            Self::Room(PublishError::TooManyRooms { .. }) => {
                "name at most [limits] max_rooms_per_publish rooms in one message; a \"*\" value reaches every room with that key"
            }
            Self::Room(_) => {
                "each room must be a JSON object of strings, numbers or booleans, e.g. {\"target\": \"message\"}"
            }
        }
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    rooms: Option<serde_json::Value>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// Reads `body` as a trigger message and publishes its `data` to its
/// rooms; returns how many subscriptions it was delivered to.
pub fn publish(state: &AppState, body: &[u8]) -> Result<u64, MessageError> {
    let parsed: Body<'_> = serde_json::from_slice(body).map_err(|_| MessageError::Json)?;
    let rooms = parsed
        .rooms
        .filter(serde_json::Value::is_array)
        .ok_or(MessageError::NoRooms)?;
    let data = parsed.data.ok_or(MessageError::NoData)?;
    let rooms = AppState::parse_rooms(&rooms, state.max_rooms_per_publish())?;
    Ok(state.publish(&rooms, data))
}
