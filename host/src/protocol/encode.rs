//! Server frames as exact JSON text, for the dialects to compose. Each is
//! a struct whose field order is the wire order, encoded by serde_json (so
//! escaping is right by construction).

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

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

/// `{"is_authorized":false}`, sent before the dialect's close (4001 in
/// `modhost.v1`, 1000 in high-templar's).
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

/// `{"code":"success","requestId":"1","offset":7,"epoch":"…"}`: a
/// subscription to a room with history, and where that history is now.
pub fn subscribed(request_id: Option<&str>, position: &super::StreamPosition) -> String {
    #[derive(Serialize)]
    struct Subscribed<'a> {
        code: &'static str,
        #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        offset: u64,
        epoch: &'a str,
    }
    encode(&Subscribed {
        code: "success",
        request_id,
        offset: position.offset,
        epoch: &position.epoch,
    })
}

/// `{"type":"recovered","requestId":"1","complete":true}`: every missed
/// publication was sent before this (or, `false`, none were: the history
/// no longer reaches back that far).
pub fn recovered(request_id: &str, complete: bool) -> String {
    #[derive(Serialize)]
    struct Recovered<'a> {
        r#type: &'static str,
        #[serde(rename = "requestId")]
        request_id: &'a str,
        complete: bool,
    }
    encode(&Recovered {
        r#type: "recovered",
        request_id,
        complete,
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
