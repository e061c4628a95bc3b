//! Decoding and encoding tests.

use super::{encode::*, *};
use proptest::prelude::*;
use serde_json::{Value, json, value::RawValue};

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
    let f = ok(r#"{"type":"subscribe","room":{"target":"chat","customer":"*"},"requestId":"1"}"#);
    let ClientFrame::Subscribe {
        room,
        request_id,
        since,
    } = &f
    else {
        panic!("{f:?}")
    };
    assert_eq!(room, &json!({"target": "chat", "customer": "*"}));
    assert_eq!(request_id.as_deref(), Some("1"));
    assert_eq!(since, &None);
    assert_eq!(f.request_id(), Some("1"));
}

#[test]
fn subscribe_since_a_position_and_malformed_ones_as_none() {
    let since = |raw: &str| {
        let text =
            format!(r#"{{"type":"subscribe","room":{{"a":1}},"requestId":"1","since":{raw}}}"#);
        match ok(&text) {
            ClientFrame::Subscribe { since, .. } => since,
            other => panic!("{other:?}"),
        }
    };
    let got = since(r#"{"offset":42,"epoch":"e1"}"#).unwrap();
    assert_eq!((got.offset, &*got.epoch), (42, "e1"));
    assert_eq!(since(r#"{"offset":"42","epoch":"e1"}"#), None);
    assert_eq!(since("null"), None);
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
        matches!(&f, ClientFrame::Subscribe { room, request_id: None, .. } if room == &json!({})),
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
fn request_ids_past_256_bytes_are_refused_in_every_frame_that_has_one() {
    let at_limit = "7".repeat(MAX_REQUEST_ID_BYTES);
    let past = "7".repeat(MAX_REQUEST_ID_BYTES + 1);
    for kind in ["subscribe", "unsubscribe", "call"] {
        let frame = |rid: &str| format!(r#"{{"type":"{kind}","requestId":"{rid}"}}"#);
        assert_eq!(ok(&frame(&at_limit)).request_id(), Some(at_limit.as_str()));
        assert_eq!(
            decode(&frame(&past), DEPTH).unwrap_err(),
            DecodeError::RequestIdTooLong {
                max: MAX_REQUEST_ID_BYTES
            },
            "{kind}"
        );
    }
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
        resource_offer(&json!([{"name": "notes", "version": "1.0.0", "commands": ["write_note"]}])),
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
            ClientFrame::Subscribe { room: r, request_id, .. } => {
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

#[test]
fn history_frames_are_modhost_v1_only() {
    use super::{Dialect, Extended, Legacy, StreamPosition};
    let at = StreamPosition {
        offset: 7,
        epoch: "e1".into(),
    };
    assert_eq!(
        Extended.subscribed(Some("1"), Some(&at)),
        r#"{"code":"success","requestId":"1","offset":7,"epoch":"e1"}"#
    );
    assert_eq!(
        Extended.subscribed(Some("1"), None),
        r#"{"code":"success","requestId":"1"}"#
    );
    assert_eq!(
        Extended.recovered("1", false).unwrap(),
        r#"{"type":"recovered","requestId":"1","complete":false}"#
    );
    assert!(Extended.offsets());
    // high-templar's reply is unchanged, and it has no recovery.
    assert_eq!(
        Legacy.subscribed(Some("1"), Some(&at)),
        r#"{"code":"success"}"#
    );
    assert_eq!(Legacy.recovered("1", true), None);
    assert!(!Legacy.offsets());
}
