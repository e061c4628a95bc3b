//! Client text frames → [`ClientFrame`], and server frames as JSON text.
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

use std::fmt;

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// The keep-alive reply to the raw text `ping` (not JSON).
pub const PONG: &str = "pong";

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
    Subscribe {
        room: Value,
        request_id: Option<String>,
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
    Ok(wire.into_frame())
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

// ---- server frames ------------------------------------------------------
//
// Each is a struct whose field order is the wire order, encoded by
// serde_json (so escaping is right by construction).

fn encode<T: Serialize>(frame: &T) -> String {
    // These frames hold only strings, bools, `Value`s and `RawValue`s, whose
    // serialization to a String cannot fail.
    serde_json::to_string(frame).expect("server frames always serialize")
}

#[derive(Serialize)]
struct Authorized<'a> {
    is_authorized: bool,
    allowed_rooms: &'a [Value],
    user: &'a str,
    session: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: Option<&'a str>,
}

/// First frame of an authenticated connection:
/// `{"is_authorized":true,"allowed_rooms":[...],"user":"…","session":"…","resume":"…"}`
/// (`resume` omitted when `None`).
pub fn authorized(
    allowed_rooms: &[Value],
    user: &str,
    session: &str,
    resume_token: Option<&str>,
) -> String {
    encode(&Authorized {
        is_authorized: true,
        allowed_rooms,
        user,
        session,
        resume: resume_token,
    })
}

/// `{"is_authorized":false}`, sent before closing with 4001.
pub fn unauthorized() -> String {
    r#"{"is_authorized":false}"#.to_owned()
}

#[derive(Serialize)]
struct Code<'a> {
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// `{"code":"success","requestId":"1"}` (subscribe/unsubscribe).
pub fn success(request_id: Option<&str>) -> String {
    encode(&Code {
        code: "success",
        message: None,
        request_id,
    })
}

/// `{"code":"error","message":"room-not-found","requestId":"1"}`.
pub fn error(message: &str, request_id: Option<&str>) -> String {
    encode(&Code {
        code: "error",
        message: Some(message),
        request_id,
    })
}

#[derive(Serialize)]
struct Reply<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "requestId")]
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    done: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl<'a> Reply<'a> {
    fn new(kind: &'static str, request_id: &'a str) -> Self {
        Reply {
            kind,
            request_id,
            result: None,
            done: None,
            code: None,
            message: None,
        }
    }
}

/// `{"type":"reply","requestId":"7","result":...}`, plus `"done":…` for
/// streamed replies.
pub fn reply(request_id: &str, result: &RawValue, done: Option<bool>) -> String {
    encode(&Reply {
        result: Some(result),
        done,
        ..Reply::new("reply", request_id)
    })
}

/// `{"type":"push","module":"echo","data":...}`: a module's message to a
/// user's sessions (`Host::send_to_user`).
pub fn push(module: &str, data: &RawValue) -> String {
    #[derive(Serialize)]
    struct Push<'a> {
        r#type: &'static str,
        module: &'a str,
        data: &'a RawValue,
    }
    encode(&Push {
        r#type: "push",
        module,
        data,
    })
}

/// `{"type":"ack","requestId":"7"}` for commands declared without a reply.
pub fn ack(request_id: &str) -> String {
    encode(&Reply::new("ack", request_id))
}

/// `{"type":"error","requestId":"7","code":"…","message":"…"}`.
pub fn call_error(request_id: &str, code: &str, message: &str) -> String {
    encode(&Reply {
        code: Some(code),
        message: Some(message),
        ..Reply::new("error", request_id)
    })
}

#[derive(Serialize)]
struct Typed<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct Modules<'a> {
    modules: &'a Value,
}

#[derive(Serialize)]
struct Resumed {
    complete: bool,
}

/// `{"type":"resource_offer","modules":[...]}`, the second frame.
pub fn resource_offer(modules: &Value) -> String {
    encode(&Typed {
        kind: "resource_offer",
        body: &Modules { modules },
    })
}

/// `{"type":"resume_failed","reason":"…"}`: the client asked to resume a
/// session that is unknown, expired or not its own; this is a new session.
pub fn resume_failed(reason: &str) -> String {
    #[derive(Serialize)]
    struct ResumeFailed<'a> {
        r#type: &'static str,
        reason: &'a str,
    }
    encode(&ResumeFailed {
        r#type: "resume_failed",
        reason,
    })
}

/// `{"type":"resumed","complete":true}`.
pub fn resumed(complete: bool) -> String {
    encode(&Typed {
        kind: "resumed",
        body: &Resumed { complete },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const DEPTH: usize = 32;

    fn ok(text: &str) -> ClientFrame {
        decode(text, DEPTH).unwrap()
    }

    #[test]
    fn ping_is_exact() {
        assert!(matches!(ok("ping"), ClientFrame::Ping));
        assert_eq!(decode("ping ", DEPTH).unwrap_err(), DecodeError::NonJson);
        assert_eq!(decode("PING", DEPTH).unwrap_err(), DecodeError::NonJson);
        assert_eq!(
            decode(r#""ping""#, DEPTH).unwrap_err(),
            DecodeError::NonJson
        );
        assert_eq!(PONG, "pong");
    }

    #[test]
    fn subscribe() {
        let f =
            ok(r#"{"type":"subscribe","room":{"target":"chat","customer":"*"},"requestId":"1"}"#);
        let ClientFrame::Subscribe { room, request_id } = &f else {
            panic!("{f:?}")
        };
        assert_eq!(room, &json!({"target": "chat", "customer": "*"}));
        assert_eq!(request_id.as_deref(), Some("1"));
        assert_eq!(f.request_id(), Some("1"));
    }

    #[test]
    fn subscribe_without_room_or_with_bad_room() {
        let f = ok(r#"{"type":"subscribe","requestId":"1"}"#);
        assert!(
            matches!(
                f,
                ClientFrame::Subscribe {
                    room: Value::Null,
                    ..
                }
            ),
            "{f:?}"
        );
        let f = ok(r#"{"type":"subscribe","room":["foo"],"requestId":"1"}"#);
        assert!(
            matches!(
                f,
                ClientFrame::Subscribe {
                    room: Value::Array(_),
                    ..
                }
            ),
            "{f:?}"
        );
        let f = ok(r#"{"type":"subscribe","room":{}}"#);
        assert!(
            matches!(&f, ClientFrame::Subscribe { room, request_id: None } if room == &json!({})),
            "{f:?}"
        );
    }

    #[test]
    fn request_id_forms() {
        let id = |raw: &str| {
            ok(&format!(r#"{{"type":"unsubscribe","requestId":{raw}}}"#))
                .request_id()
                .map(str::to_owned)
        };
        assert_eq!(id(r#""abc""#).as_deref(), Some("abc"));
        assert_eq!(id("7").as_deref(), Some("7"));
        assert_eq!(id("-3").as_deref(), Some("-3"));
        assert_eq!(id("1.5").as_deref(), Some("1.5"));
        assert_eq!(
            id("18446744073709551615").as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(id("null"), None);
        assert_eq!(id("true"), None);
        assert_eq!(id("[1]"), None);
        assert_eq!(id(r#"{"a":1}"#), None);
        assert_eq!(id(r#""""#).as_deref(), Some(""));
        assert!(matches!(
            ok(r#"{"type":"unsubscribe"}"#),
            ClientFrame::Unsubscribe { request_id: None }
        ));
    }

    #[test]
    fn call() {
        let f = ok(
            r#"{"type":"call","module":"notes","command":"write_note","params":{"text": "hi", "n":[1,2]},"requestId":7}"#,
        );
        let ClientFrame::Call {
            module,
            command,
            params,
            request_id,
        } = f
        else {
            panic!()
        };
        assert_eq!(module.as_deref(), Some("notes"));
        assert_eq!(command.as_deref(), Some("write_note"));
        // Passed through as the client's text.
        assert_eq!(params.unwrap().get(), r#"{"text": "hi", "n":[1,2]}"#);
        assert_eq!(request_id.as_deref(), Some("7"));

        let f = ok(r#"{"type":"call","module":5,"requestId":"x"}"#);
        let ClientFrame::Call {
            module,
            command,
            params,
            ..
        } = f
        else {
            panic!()
        };
        assert!(module.is_none() && command.is_none() && params.is_none());
    }

    #[test]
    fn status_unknown_and_extra_fields() {
        assert!(matches!(ok(r#"{"type":"status"}"#), ClientFrame::Status));
        assert!(matches!(
            ok(r#"{"type":"publish","data":1}"#),
            ClientFrame::Unknown
        ));
        assert!(matches!(ok(r#"{"type":5}"#), ClientFrame::Unknown));
        assert!(matches!(ok(r#"{"type":null}"#), ClientFrame::Unknown));
        assert!(matches!(ok(r#"{}"#), ClientFrame::Unknown));
        assert!(matches!(ok(r#"{"requestId":"1"}"#), ClientFrame::Unknown));
        assert!(matches!(
            ok(r#"{"type":"Subscribe"}"#),
            ClientFrame::Unknown
        ));
        // Unknown fields, even nested ones, are ignored.
        assert!(matches!(
            ok(r#"{"scope":{"a":[1,{"b":2}]},"type":"status","x":null}"#),
            ClientFrame::Status
        ));
        // Escaped key names are still recognised; the last duplicate wins.
        assert!(matches!(
            ok(r#"{"t\u0079pe":"status"}"#),
            ClientFrame::Status
        ));
        assert!(matches!(
            ok(r#"{"type":"call","type":"status"}"#),
            ClientFrame::Status
        ));
    }

    #[test]
    fn non_json() {
        for text in [
            "",
            "hello",
            "{",
            r#"{"type":"status"} x"#,
            "[]",
            "1",
            "null",
            r#""x""#,
            "{'a':1}",
        ] {
            assert_eq!(
                decode(text, DEPTH).unwrap_err(),
                DecodeError::NonJson,
                "{text:?}"
            );
        }
    }

    #[test]
    fn too_deep_without_recursing() {
        let deep = "[".repeat(10_000);
        assert_eq!(
            decode(&deep, DEPTH).unwrap_err(),
            DecodeError::TooDeep { max_depth: DEPTH }
        );
        let deep_obj = format!(r#"{{"type":"status","x":{}}}"#, "{\"a\":".repeat(100_000));
        assert!(matches!(
            decode(&deep_obj, DEPTH),
            Err(DecodeError::TooDeep { .. })
        ));
        // A huge limit is capped below serde_json's own.
        assert_eq!(
            decode(&deep, usize::MAX).unwrap_err(),
            DecodeError::TooDeep { max_depth: 127 }
        );
    }

    #[test]
    fn depth_limit_is_exact_and_ignores_strings() {
        // The frame itself is depth 1; each array inside adds 1.
        let at = |n: usize| {
            format!(
                r#"{{"type":"status","x":{}{}}}"#,
                "[".repeat(n - 1),
                "]".repeat(n - 1)
            )
        };
        assert!(matches!(decode(&at(4), 4), Ok(ClientFrame::Status)));
        assert!(matches!(
            decode(&at(5), 4),
            Err(DecodeError::TooDeep { max_depth: 4 })
        ));
        assert!(matches!(
            decode(r#"{"type":"status"}"#, 1),
            Ok(ClientFrame::Status)
        ));
        assert!(matches!(
            decode(&at(2), 1),
            Err(DecodeError::TooDeep { .. })
        ));
        let stringy = r#"{"type":"status","x":"[[[[[[[[[[{{{{{{{{\"[[[[[[\\"}"#;
        assert!(matches!(decode(stringy, 2), Ok(ClientFrame::Status)));
        // At the cap, serde_json still parses it.
        let cap = format!(
            r#"{{"type":"status","x":{}{}}}"#,
            "[".repeat(126),
            "]".repeat(126)
        );
        assert!(matches!(decode(&cap, 1000), Ok(ClientFrame::Status)));
        let over = format!(
            r#"{{"type":"status","x":{}{}}}"#,
            "[".repeat(127),
            "]".repeat(127)
        );
        assert!(matches!(
            decode(&over, 1000),
            Err(DecodeError::TooDeep { max_depth: 127 })
        ));
    }

    #[test]
    fn server_frames() {
        assert_eq!(
            authorized(
                &[json!({"target": "message", "customer": "*"})],
                "alice",
                "s1",
                Some("r\"t")
            ),
            r#"{"is_authorized":true,"allowed_rooms":[{"customer":"*","target":"message"}],"user":"alice","session":"s1","resume":"r\"t"}"#
        );
        assert_eq!(
            authorized(&[], "bob", "s2", None),
            r#"{"is_authorized":true,"allowed_rooms":[],"user":"bob","session":"s2"}"#
        );
        assert_eq!(unauthorized(), r#"{"is_authorized":false}"#);
        assert_eq!(success(Some("1")), r#"{"code":"success","requestId":"1"}"#);
        assert_eq!(success(None), r#"{"code":"success"}"#);
        assert_eq!(
            error("room-not-found", Some("1")),
            r#"{"code":"error","message":"room-not-found","requestId":"1"}"#
        );
        assert_eq!(
            error("non-json-message", None),
            r#"{"code":"error","message":"non-json-message"}"#
        );
        let result = RawValue::from_string(r#"{"ok":true}"#.into()).unwrap();
        assert_eq!(
            reply("7", &result, None),
            r#"{"type":"reply","requestId":"7","result":{"ok":true}}"#
        );
        assert_eq!(
            reply("7", &result, Some(true)),
            r#"{"type":"reply","requestId":"7","result":{"ok":true},"done":true}"#
        );
        assert_eq!(
            reply("7", &result, Some(false)),
            r#"{"type":"reply","requestId":"7","result":{"ok":true},"done":false}"#
        );
        assert_eq!(ack("7"), r#"{"type":"ack","requestId":"7"}"#);
        assert_eq!(
            call_error("7", "unknown-module", "no module \"x\""),
            r#"{"type":"error","requestId":"7","code":"unknown-module","message":"no module \"x\""}"#
        );
        assert_eq!(
            resource_offer(
                &json!([{"name": "notes", "version": "1.0.0", "commands": ["write_note"]}])
            ),
            r#"{"type":"resource_offer","modules":[{"commands":["write_note"],"name":"notes","version":"1.0.0"}]}"#
        );
        assert_eq!(resumed(true), r#"{"type":"resumed","complete":true}"#);
        assert_eq!(resumed(false), r#"{"type":"resumed","complete":false}"#);
    }

    #[test]
    fn request_ids_are_escaped_in_replies() {
        let id = "a\"b\\c\n\u{1}é";
        let text = success(Some(id));
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["requestId"], id);
    }

    proptest! {
        /// Frames a client library builds come back field for field,
        /// whatever text the fields hold.
        #[test]
        fn decode_reads_back_what_a_client_sends(
            rid in "\\PC{0,40}",
            module in "\\PC{0,20}",
            command in "\\PC{0,20}",
            param in "\\PC{0,40}",
            customer in "\\PC{0,20}",
        ) {
            let call = json!({"type": "call", "module": module, "command": command,
                              "params": {"p": param}, "requestId": rid});
            match decode(&call.to_string(), DEPTH).unwrap() {
                ClientFrame::Call { module: m, command: c, params, request_id } => {
                    prop_assert_eq!(m.as_deref(), Some(module.as_str()));
                    prop_assert_eq!(c.as_deref(), Some(command.as_str()));
                    prop_assert_eq!(request_id.as_deref(), Some(rid.as_str()));
                    let params: Value = serde_json::from_str(params.unwrap().get()).unwrap();
                    prop_assert_eq!(params, json!({"p": param}));
                }
                other => prop_assert!(false, "{other:?}"),
            }
            let room = json!({"target": "message", "customer": customer});
            let sub = json!({"type": "subscribe", "room": room, "requestId": rid});
            match decode(&sub.to_string(), DEPTH).unwrap() {
                ClientFrame::Subscribe { room: r, request_id } => {
                    prop_assert_eq!(r, room);
                    prop_assert_eq!(request_id.as_deref(), Some(rid.as_str()));
                }
                other => prop_assert!(false, "{other:?}"),
            }
        }

        /// Nesting: exactly `max_depth` levels decode, one more is TooDeep,
        /// for arrays and objects alike.
        #[test]
        fn depth_limit_is_exact(depth in 1usize..127, objects in any::<bool>()) {
            let nest = |levels: usize| {
                // The frame is level 1; `x` holds levels - 1 more.
                let inner = levels - 1;
                let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
                format!(r#"{{"type":"status","x":{}1{}}}"#, open.repeat(inner), close.repeat(inner))
            };
            prop_assert!(decode(&nest(depth), depth).is_ok());
            prop_assert_eq!(
                decode(&nest(depth + 1), depth).unwrap_err(),
                DecodeError::TooDeep { max_depth: depth }
            );
        }

        #[test]
        fn decode_never_panics_on_any_text(text in ".{0,200}") {
            let _ = decode(&text, 8);
        }

        #[test]
        fn decode_never_panics_on_json_like_text(
            text in r#"[\[\]{}":,\\a-z0-9 .\-]{0,200}"#,
            depth in 0_usize..200,
        ) {
            let _ = decode(&text, depth);
        }

        #[test]
        fn decode_never_panics_on_frame_shapes(
            kind in prop_oneof![Just("\"subscribe\""), Just("\"call\""), Just("\"unsubscribe\""), Just("1"), Just("null")],
            value in r#"(null|true|-?[0-9]{1,25}(\.[0-9]{1,5})?(e-?[0-9]{1,4})?|"[a-z*\\"]{0,5}"|\[\]|\{\}|\{"a":1\})"#,
        ) {
            for field in ["room", "requestId", "module", "command", "params"] {
                let text = format!(r#"{{"type":{kind},"{field}":{value}}}"#);
                let _ = decode(&text, 8);
            }
        }
    }
}
