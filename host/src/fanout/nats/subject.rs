//! Rooms as NATS subjects.
//!
//! A room `{k1: v1, k2: v2}` (keys sorted) is published on
//! `<prefix>.r.<k1>.<v1>.<k2>.<v2>`. Each key token is `k` and the escaped
//! key; each value token says its type first (`s` string, `n` number, `T`,
//! `F`, `N` for true, false, null), so `"1"` and `1` stay apart as they do
//! in the room index. Escaping keeps ASCII letters, digits, `-` and `_`
//! and writes every other byte as `%XX`: `.`, `*`, `>`, whitespace and `%`
//! can never split, widen or end a subject. A token longer than
//! [`MAX_TOKEN`] bytes becomes `~` and a hash of it, to keep subjects
//! under the server's control-line limit; a clash would only send a host
//! a publication its index then matches against nothing.
//!
//! A subscription's `"*"` value is NATS's single-token `*`, so the server
//! matches wildcard subscriptions itself. A *published* `"*"` (which
//! reaches every value) has no subject: such publishes go on
//! `<prefix>.w.<k1>.<k2>`, the room's key set, which every host with a
//! subscription on that key set also listens to.

use sha2::{Digest, Sha256};

use crate::rooms::{Room, RoomValue};

/// Tokens longer than this (escaped) are hashed.
const MAX_TOKEN: usize = 96;

/// The subject a room's publications go on (`None` when a value is
/// `"*"`: see [`wild_subject`]), or a subscription listens on.
pub(crate) fn room_subject(prefix: &str, room: &Room, for_subscription: bool) -> Option<String> {
    if !for_subscription && room.has_wildcard() {
        return None;
    }
    let mut subject = format!("{prefix}.r");
    for (key, value) in room.iter() {
        subject.push('.');
        push_token(&mut subject, 'k', key.as_bytes());
        subject.push('.');
        match value {
            v if v.is_wildcard() => subject.push('*'),
            RoomValue::String(s) => push_token(&mut subject, 's', s.as_bytes()),
            RoomValue::Number(n) => {
                push_token(&mut subject, 'n', n.to_json().to_string().as_bytes())
            }
            RoomValue::Bool(true) => subject.push('T'),
            RoomValue::Bool(false) => subject.push('F'),
            RoomValue::Null => subject.push('N'),
        }
    }
    Some(subject)
}

/// The subject of publishes to rooms with this room's keys and a `"*"`
/// value.
pub(crate) fn wild_subject(prefix: &str, room: &Room) -> String {
    let mut subject = format!("{prefix}.w");
    for key in room.keys() {
        subject.push('.');
        push_token(&mut subject, 'k', key.as_bytes());
    }
    subject
}

/// Appends `kind` and `raw` escaped (hashed when too long).
fn push_token(out: &mut String, kind: char, raw: &[u8]) {
    let mut token = String::with_capacity(raw.len() + 1);
    token.push(kind);
    for &b in raw {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            token.push(char::from(b));
        } else {
            token.push_str(&format!("%{b:02X}"));
        }
    }
    if token.len() > MAX_TOKEN {
        let digest = Sha256::digest(token.as_bytes());
        out.push('~');
        out.push_str(&hex::encode(&digest[..16]));
    } else {
        out.push_str(&token);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn room(v: serde_json::Value) -> Room {
        Room::parse(&v).unwrap()
    }

    fn subject(v: serde_json::Value) -> String {
        room_subject("mh", &room(v), true).unwrap()
    }

    #[test]
    fn keys_sorted_and_values_typed() {
        assert_eq!(
            subject(json!({"target": "chat", "customer": 7})),
            "mh.r.kcustomer.n7.ktarget.schat"
        );
        assert_ne!(subject(json!({"a": "1"})), subject(json!({"a": 1})));
        assert_eq!(
            subject(json!({"a": true, "b": false, "c": null})),
            "mh.r.ka.T.kb.F.kc.N"
        );
        assert_eq!(subject(json!({"a": 1.0})), subject(json!({"a": 1})));
    }

    #[test]
    fn dots_stars_spaces_and_percent_are_escaped() {
        let s = subject(json!({"a.b": "x y*>%\t"}));
        assert_eq!(s, "mh.r.ka%2Eb.sx%20y%2A%3E%25%09");
        // Different rooms, different subjects: escaping is one-to-one.
        assert_ne!(subject(json!({"a": "x.y"})), subject(json!({"a": "x%2Ey"})));
        assert_eq!(s.split('.').count(), 4, "{s}");
    }

    #[test]
    fn a_star_value_is_the_single_token_wildcard_for_subscriptions_only() {
        let r = room(json!({"target": "chat", "customer": "*"}));
        assert_eq!(
            room_subject("mh", &r, true).unwrap(),
            "mh.r.kcustomer.*.ktarget.schat"
        );
        assert_eq!(room_subject("mh", &r, false), None);
        assert_eq!(wild_subject("mh", &r), "mh.w.kcustomer.ktarget");
        // A literal "*" inside a longer value is not a wildcard.
        assert_eq!(subject(json!({"a": "**"})), "mh.r.ka.s%2A%2A");
    }

    #[test]
    fn long_tokens_are_hashed_apart() {
        let a = subject(json!({"a": "x".repeat(200)}));
        let b = subject(json!({"a": format!("{}y", "x".repeat(199))}));
        assert_ne!(a, b);
        assert!(a.len() < 80, "{a}");
        assert!(a.contains('~'), "{a}");
    }

    #[test]
    fn the_empty_room_has_a_subject() {
        assert_eq!(subject(json!({})), "mh.r");
    }
}
