//! Client text frames → [`ClientFrame`].
//!
//! Decoding is lenient where high-templar clients expect it and strict where
//! input could hurt the host:
//! - anything that parses as a JSON object is a frame; a missing or unknown
//!   `type` is [`ClientFrame::Unknown`] (the caller answers
//!   `message-type-not-allowed`), a missing `room` is `Value::Null` (the
//!   caller answers `invalid-room`), fields of the wrong type are treated as
//!   missing. None of these drop the connection.
//! - nesting is checked by a byte scan *before* parsing, so `[[[[…` cannot
//!   recurse deeply anywhere ([`DecodeError::TooDeep`]).
//! - duplicate keys: the last one wins, as in browsers' `JSON.parse`.
//! - a `requestId` longer than [`MAX_REQUEST_ID_BYTES`] is refused
//!   ([`DecodeError::RequestIdTooLong`]): a session keeps its ids (one per
//!   subscription, one per remembered call), so their length is part of
//!   what a client can make the host hold.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::StreamPosition;

/// The keep-alive reply to the raw text `ping` (not JSON).
pub const PONG: &str = "pong";

/// Longest `requestId` accepted, in bytes. Clients use counters or UUIDs
/// (36 bytes); high-templar's clients send short strings.
pub const MAX_REQUEST_ID_BYTES: usize = 256;

/// serde_json refuses input nested 128 deep; keep the effective limit
/// below that so over-deep input is always reported as [`DecodeError::TooDeep`].
const SERDE_JSON_MAX_DEPTH: usize = 127;

/// A decoded client frame.
#[derive(Debug, Clone)]
pub enum ClientFrame {
    /// The raw text `ping`; answer [`PONG`].
    Ping,
    /// `room` is whatever the client sent (`Null` when missing); the caller
    /// validates it with `Room::parse`.
    /// `since` is the position a `modhost.v1` client last saw in the
    /// room's history (`{"since":{"offset":…,"epoch":"…"}}`); `None` when
    /// missing or malformed (the subscription then recovers nothing).
    Subscribe {
        room: Value,
        request_id: Option<String>,
        since: Option<StreamPosition>,
    },
    Unsubscribe {
        request_id: Option<String>,
    },
    /// `params` is kept as the client's JSON text so it reaches the module
    /// without being parsed and re-encoded.
    Call {
        module: Option<String>,
        command: Option<String>,
        params: Option<Box<RawValue>>,
        request_id: Option<String>,
    },
    Status,
    /// `type` missing, not a string, or not one of the above.
    Unknown,
}

impl ClientFrame {
    /// The frame's `requestId`, if it has one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ClientFrame::Subscribe { request_id, .. }
            | ClientFrame::Unsubscribe { request_id }
            | ClientFrame::Call { request_id, .. } => request_id.as_deref(),
            ClientFrame::Ping | ClientFrame::Status | ClientFrame::Unknown => None,
        }
    }
}

/// Why a text frame is not a client frame. Both get an error reply; neither
/// closes the connection by itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, or JSON but not an object (`non-json-message`).
    #[error("frame is not a JSON object")]
    NonJson,
    /// Nested deeper than the configured limit.
    #[error("frame is nested deeper than {max_depth} levels")]
    TooDeep { max_depth: usize },
    /// A `requestId` longer than [`MAX_REQUEST_ID_BYTES`]
    /// (`request-id-too-long`).
    #[error("requestId is longer than {max} bytes")]
    RequestIdTooLong { max: usize },
}

/// Decode one text frame. `max_depth` counts nested arrays/objects, the
/// frame's own object being 1; it is capped at 127 (serde_json's own limit).
/// Never panics.
pub fn decode(text: &str, max_depth: usize) -> Result<ClientFrame, DecodeError> {
    if text == "ping" {
        return Ok(ClientFrame::Ping);
    }
    let max_depth = max_depth.min(SERDE_JSON_MAX_DEPTH);
    if nesting_exceeds(text.as_bytes(), max_depth) {
        return Err(DecodeError::TooDeep { max_depth });
    }
    let wire: Wire = serde_json::from_str(text).map_err(|_| DecodeError::NonJson)?;
    let frame = wire.into_frame();
    if frame
        .request_id()
        .is_some_and(|id| id.len() > MAX_REQUEST_ID_BYTES)
    {
        return Err(DecodeError::RequestIdTooLong {
            max: MAX_REQUEST_ID_BYTES,
        });
    }
    Ok(frame)
}

/// Does `[`/`{` nesting, outside strings, ever go deeper than `max`? Only a
/// guard: input that isn't JSON at all may pass and fail parsing later.
fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The fields we read, each as loosely typed as the protocol allows.
#[derive(Default)]
struct Wire {
    kind: Option<Value>,
    room: Option<Value>,
    request_id: Option<Value>,
    module: Option<Value>,
    command: Option<Value>,
    params: Option<Box<RawValue>>,
    since: Option<Value>,
}

#[derive(serde::Deserialize)]
#[serde(field_identifier)]
enum Field {
    #[serde(rename = "type")]
    Type,
    #[serde(rename = "room")]
    Room,
    #[serde(rename = "requestId")]
    RequestId,
    #[serde(rename = "module")]
    Module,
    #[serde(rename = "command")]
    Command,
    #[serde(rename = "params")]
    Params,
    #[serde(rename = "since")]
    Since,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Wire, D::Error> {
        deserializer.deserialize_map(WireVisitor)
    }
}

struct WireVisitor;

impl<'de> Visitor<'de> for WireVisitor {
    type Value = Wire;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
        let mut wire = Wire::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Type => wire.kind = Some(map.next_value()?),
                Field::Room => wire.room = Some(map.next_value()?),
                Field::RequestId => wire.request_id = Some(map.next_value()?),
                Field::Module => wire.module = Some(map.next_value()?),
                Field::Command => wire.command = Some(map.next_value()?),
                Field::Params => wire.params = Some(map.next_value()?),
                Field::Since => wire.since = Some(map.next_value()?),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(wire)
    }
}

impl Wire {
    fn into_frame(self) -> ClientFrame {
        let request_id = self.request_id.and_then(request_id_text);
        match self.kind.as_ref().and_then(Value::as_str) {
            Some("subscribe") => ClientFrame::Subscribe {
                room: self.room.unwrap_or(Value::Null),
                request_id,
                since: self.since.as_ref().and_then(StreamPosition::from_json),
            },
            Some("unsubscribe") => ClientFrame::Unsubscribe { request_id },
            Some("call") => ClientFrame::Call {
                module: self.module.and_then(string),
                command: self.command.and_then(string),
                params: self.params,
                request_id,
            },
            Some("status") => ClientFrame::Status,
            _ => ClientFrame::Unknown,
        }
    }
}

/// A `requestId` may be a string or a number (`7` → `"7"`, `1.5` → `"1.5"`);
/// anything else counts as missing.
fn request_id_text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}
