//! Tests for `rooms::room`: parsing, canonical form, the permission and delivery rules.

use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::hash_map::DefaultHasher;

fn room(v: Value) -> Room {
    Room::parse(&v).unwrap()
}

fn hash_of(r: &Room) -> u64 {
    let mut h = DefaultHasher::new();
    r.hash(&mut h);
    h.finish()
}

#[test]
fn key_order_is_irrelevant() {
    let a = room(json!({"target": "message", "customer": "1"}));
    let b = Room::parse(&serde_json::from_str(r#"{"customer":"1","target":"message"}"#).unwrap())
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(hash_of(&a), hash_of(&b));
    assert_eq!(a.to_string(), r#"{"customer":"1","target":"message"}"#);
}

#[test]
fn type_sensitive() {
    let s = room(json!({"c": "1"}));
    let n = room(json!({"c": 1}));
    let t = room(json!({"c": true}));
    let null = room(json!({"c": null}));
    assert_ne!(s, n);
    assert_ne!(n, t);
    assert_ne!(null, s);
    assert!(!s.permits(&n) && !n.permits(&s));
    assert!(!s.matches(&n) && !n.matches(&t));
    assert!(!room(json!({"c": 1})).permits(&room(json!({"c": true}))));
}

#[test]
fn numbers_compare_by_value() {
    let cases = ["1", "1.0", "1e0", "10e-1", "1.00000"];
    let rooms: Vec<Room> = cases
        .iter()
        .map(|n| room(serde_json::from_str(&format!(r#"{{"a":{n}}}"#)).unwrap()))
        .collect();
    for r in &rooms {
        assert_eq!(r, &rooms[0]);
        assert_eq!(hash_of(r), hash_of(&rooms[0]));
        assert_eq!(r.to_string(), r#"{"a":1}"#);
    }
    assert_eq!(room(json!({"a": -0.0})), room(json!({"a": 0})));
    assert_eq!(room(json!({"a": u64::MAX})), room(json!({"a": u64::MAX})));
    assert_ne!(room(json!({"a": u64::MAX})), room(json!({"a": i64::MAX})));
    assert_ne!(room(json!({"a": 1.5})), room(json!({"a": 1})));
    assert_eq!(room(json!({"a": 1.5})), room(json!({"a": 1.50})));
    assert_eq!(room(json!({"a": 1.5})).to_string(), r#"{"a":1.5}"#);
    // 2^53 + 1 as an integer is not the float 2^53.
    assert_ne!(
        room(json!({"a": 9_007_199_254_740_993_u64})),
        room(json!({"a": 9_007_199_254_740_992.0}))
    );
    assert_eq!(
        room(json!({"a": 9_007_199_254_740_992_u64})),
        room(json!({"a": 9_007_199_254_740_992.0}))
    );
    let big = room(serde_json::from_str(r#"{"a":1e20}"#).unwrap());
    assert_eq!(
        big,
        room(serde_json::from_str(r#"{"a":100000000000000000000}"#).unwrap())
    );
    assert_eq!(big.to_string(), big.to_json().to_string());
}

#[test]
fn wildcard_permission_rules() {
    let allowed = room(json!({"target": "chat", "customer": "*"}));
    assert!(allowed.permits(&room(json!({"target": "chat", "customer": "1"}))));
    assert!(allowed.permits(&room(json!({"target": "chat", "customer": 1}))));
    assert!(allowed.permits(&room(json!({"target": "chat", "customer": "*"}))));
    assert!(allowed.permits(&room(json!({"customer": null, "target": "chat"}))));
    assert!(!allowed.permits(&room(json!({"target": "other", "customer": "1"}))));
    assert!(!allowed.permits(&room(json!({"target": "chat"}))));
    assert!(!allowed.permits(&room(json!({"target": "chat", "customer": "1", "x": 1}))));

    // A requested "*" needs "*" in the allowed room.
    let narrow = room(json!({"target": "chat", "customer": "1"}));
    assert!(!narrow.permits(&allowed));
    assert!(narrow.permits(&narrow));
    // "*" is only the exact one-character string.
    assert!(!room(json!({"c": "**"})).permits(&room(json!({"c": "x"}))));
}

#[test]
fn match_rules() {
    let sub_all = room(json!({"target": "chat", "customer": "*"}));
    let pub_one = room(json!({"target": "chat", "customer": "1"}));
    let pub_all = room(json!({"target": "chat", "customer": "*"}));
    let sub_one = room(json!({"customer": "1", "target": "chat"}));
    let sub_two = room(json!({"customer": 2, "target": "chat"}));
    assert!(Room::matches(&pub_one, &sub_all));
    assert!(Room::matches(&pub_all, &sub_one));
    assert!(Room::matches(&pub_all, &sub_two));
    assert!(Room::matches(&pub_all, &sub_all));
    assert!(Room::matches(&pub_one, &sub_one));
    assert!(!Room::matches(&pub_one, &sub_two));
    assert!(!Room::matches(
        &pub_one,
        &room(json!({"customer": 1, "target": "chat"}))
    ));
    assert!(!Room::matches(&pub_all, &room(json!({"customer": "1"}))));
}

#[test]
fn empty_room_only_matches_empty() {
    let empty = room(json!({}));
    assert!(empty.is_empty());
    assert!(empty.permits(&room(json!({}))));
    assert!(empty.matches(&room(json!({}))));
    assert!(!empty.permits(&room(json!({"a": "*"}))));
    assert!(!room(json!({"a": "*"})).permits(&empty));
    assert!(!empty.matches(&room(json!({"a": "*"}))));
    assert_eq!(empty.to_string(), "{}");
}

#[test]
fn parse_errors() {
    assert_eq!(Room::parse(&json!(null)), Err(RoomError::NotAnObject));
    assert_eq!(Room::parse(&json!(["a"])), Err(RoomError::NotAnObject));
    assert_eq!(Room::parse(&json!("foo")), Err(RoomError::NotAnObject));
    assert_eq!(
        Room::parse(&json!({"a": [1]})),
        Err(RoomError::NotScalar { key: "a".into() })
    );
    assert_eq!(
        Room::parse(&json!({"a": {"b": 1}})),
        Err(RoomError::NotScalar { key: "a".into() })
    );
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_eq!(
        Room::parse(&Value::Object(many)),
        Err(RoomError::TooManyKeys(17))
    );
    let sixteen: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_eq!(Room::parse(&Value::Object(sixteen)).unwrap().len(), 16);

    let long_key = "k".repeat(129);
    assert_eq!(
        Room::parse(&json!({ long_key: 1 })),
        Err(RoomError::KeyTooLong(129))
    );
    assert!(Room::parse(&json!({ "k".repeat(128): 1 })).is_ok());
    assert_eq!(
        Room::parse(&json!({"a": "v".repeat(257)})),
        Err(RoomError::ValueTooLong {
            key: "a".into(),
            len: 257
        })
    );
    assert!(Room::parse(&json!({"a": "v".repeat(256)})).is_ok());
}

#[test]
fn accessors_and_json_round_trip() {
    let v = json!({"b": "x\"y", "a": 2, "c": null, "d": false, "e": 0.25});
    let r = room(v.clone());
    assert_eq!(
        r.keys().iter().map(|k| &**k).collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(r.get("b"), Some(&RoomValue::String("x\"y".into())));
    assert_eq!(r.get("zz"), None);
    assert_eq!(r.to_json(), v);
    assert_eq!(serde_json::to_value(&r).unwrap(), v);
    let text = r.to_string();
    assert_eq!(text, r#"{"a":2,"b":"x\"y","c":null,"d":false,"e":0.25}"#);
    assert_eq!(room(serde_json::from_str(&text).unwrap()), r);
    assert!(!r.has_wildcard());
    assert!(room(json!({"a": "*"})).has_wildcard());
}

/// high-templar's `TestPermissionOrdering`.
#[test]
#[allow(
    clippy::neg_cmp_op_on_partial_ord,
    reason = "mirrors high-templar's assertFalse cases one for one"
)]
fn high_templar_permission_ordering() {
    let p1 = room(json!({
        "target": "reassignment-change-finished",
        "allocation": "*", "driver": "*", "truck": "*",
    }));
    let p2 = room(json!({
        "target": "reassignment-change-finished",
        "allocation": 1, "driver": "*", "truck": "*",
    }));
    assert!(p2 < p1);
    assert!(p2 <= p1);
    assert!(!(p2 > p1));
    assert!(!(p2 >= p1));
    assert!(p2 != p1);
    assert!(!(p1 < p2));
    assert!(!(p1 <= p2));
    assert!(p1 >= p2);
    assert!(!(p1 > p1));
    assert!(!(p1 < p1));
    assert!(p1.permits(&p2) && !p2.permits(&p1));

    // Incomparable: different keys, or crossing wildcards.
    let a = room(json!({"x": "*", "y": 1}));
    let b = room(json!({"x": 1, "y": "*"}));
    assert_eq!(a.partial_cmp(&b), None);
    assert_eq!(a.partial_cmp(&room(json!({"x": "*"}))), None);
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("*")),
        Just(json!("a")),
        Just(json!("1")),
        Just(json!(1)),
        Just(json!(1.0)),
        Just(json!(2)),
        Just(json!(null)),
        Just(json!(true)),
    ]
}

fn arb_room() -> impl Strategy<Value = Room> {
    proptest::collection::btree_map(
        prop_oneof![Just("k"), Just("l"), Just("m")],
        arb_value(),
        0..=3,
    )
    .prop_map(|m| room(json!(m)))
}

/// Any JSON value, rooms-like or not: nested, long keys, many keys.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,300}".prop_map(Value::String),
        Just(json!("*")),
    ];
    leaf.prop_recursive(3, 64, 20, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z*]{0,3}|\\PC{120,140}", inner, 0..20)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Whatever a client sends as a room: a room within the bounds, or
    /// an error; a room survives its own canonical JSON.
    #[test]
    fn parse_accepts_exactly_bounded_scalar_objects(v in arb_json()) {
        match Room::parse(&v) {
            Ok(r) => {
                let map = v.as_object().unwrap();
                prop_assert!(map.len() <= MAX_KEYS);
                prop_assert!(map.keys().all(|k| k.len() <= MAX_KEY_BYTES));
                prop_assert!(map.values().all(|v| !v.is_array() && !v.is_object()));
                prop_assert_eq!(r.len(), map.len());
                prop_assert_eq!(&room(r.to_json()), &r);
                prop_assert!(r.permits(&r) && r.matches(&r));
            }
            Err(e) => {
                let _ = e.to_string();
                let bad = match &v {
                    Value::Object(map) => {
                        map.len() > MAX_KEYS
                            || map.keys().any(|k| k.len() > MAX_KEY_BYTES)
                            || map.values().any(|v| match v {
                                Value::Array(_) | Value::Object(_) => true,
                                Value::String(s) => s.len() > MAX_STRING_BYTES,
                                _ => false,
                            })
                    }
                    _ => true,
                };
                prop_assert!(bad, "{v} refused: {e}");
            }
        }
    }

    #[test]
    fn permits_is_a_partial_order(a in arb_room(), b in arb_room(), c in arb_room()) {
        prop_assert!(a.permits(&a));
        if a.permits(&b) && b.permits(&a) {
            prop_assert_eq!(&a, &b);
        }
        if a.permits(&b) && b.permits(&c) {
            prop_assert!(a.permits(&c));
        }
    }

    #[test]
    fn matches_is_symmetric_and_implied_by_permits(a in arb_room(), b in arb_room()) {
        prop_assert_eq!(a.matches(&b), b.matches(&a));
        if a.permits(&b) {
            prop_assert!(a.matches(&b));
        }
    }

    #[test]
    fn equal_rooms_hash_alike_and_round_trip(a in arb_room(), b in arb_room()) {
        if a == b {
            prop_assert_eq!(hash_of(&a), hash_of(&b));
            prop_assert_eq!(a.to_string(), b.to_string());
        }
        let again = room(serde_json::from_str(&a.to_string()).unwrap());
        prop_assert_eq!(&again, &a);
    }
}
