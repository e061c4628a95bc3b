//! The room value type: a small JSON object of key → scalar, where the
//! string `"*"` is a wildcard.
//!
//! A [`Room`] is parsed once (at subscribe time, at authentication for the
//! allowed rooms, at publish time) into a canonical form: keys sorted, numbers
//! normalised so that `1` and `1.0` are the same value. After that, equality,
//! hashing, [`Room::permits`] and [`Room::matches`] are plain comparisons on
//! that form and never look at JSON text again.
//!
//! Comparison is type-sensitive, like high-templar: `"1"` ≠ `1` and `true` ≠
//! `1` (Python would say `True == 1`; we deliberately don't).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Number, Value};

/// At most this many keys in a room. Rooms identify a scope ("customer 7's
/// chat messages"), so a handful of keys is plenty; the bound keeps the
/// per-room work in the index small and predictable.
pub const MAX_KEYS: usize = 16;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest string value, in bytes.
pub const MAX_STRING_BYTES: usize = 256;

/// The wildcard value.
pub const WILDCARD: &str = "*";

/// Why a JSON value is not a room. The gateway answers all of these with
/// `invalid-room`; the variants exist for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    #[error("a room must be a JSON object")]
    NotAnObject,
    #[error("a room has at most {MAX_KEYS} keys, this one has {0}")]
    TooManyKeys(usize),
    #[error("room keys are at most {MAX_KEY_BYTES} bytes, one has {0}")]
    KeyTooLong(usize),
    #[error("room values are at most {MAX_STRING_BYTES} bytes, {key:?} has {len}")]
    ValueTooLong { key: String, len: usize },
    #[error("room value {key:?} must be a string, number, boolean or null")]
    NotScalar { key: String },
}

/// One value in a room: a JSON scalar in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RoomValue {
    Null,
    Bool(bool),
    Number(RoomNumber),
    String(Arc<str>),
}

/// A JSON number compared by value: `1`, `1.0` and `1e0` are equal.
///
/// Integral numbers (from integers, or floats without a fractional part
/// within ±2¹²⁷) are kept as `i128`, which holds every `i64` and `u64`
/// exactly; anything else is a finite `f64`, compared by its bits (no NaN or
/// -0.0 can reach that branch, so bit equality is value equality).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoomNumber(NumberRepr);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum NumberRepr {
    Integral(i128),
    Fractional(u64),
}

impl RoomNumber {
    fn from_json(n: &Number) -> RoomNumber {
        if let Some(i) = n.as_i64() {
            return RoomNumber(NumberRepr::Integral(i.into()));
        }
        if let Some(u) = n.as_u64() {
            return RoomNumber(NumberRepr::Integral(u.into()));
        }
        // Without serde_json's `arbitrary_precision` every other number is
        // a finite f64.
        RoomNumber::from_f64(n.as_f64().unwrap_or(0.0))
    }

    fn from_f64(f: f64) -> RoomNumber {
        // 2^127: `f as i128` is exact for integral floats in [-2^127, 2^127).
        const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
        if f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) {
            // Also folds -0.0 into 0.
            RoomNumber(NumberRepr::Integral(f as i128))
        } else {
            RoomNumber(NumberRepr::Fractional(f.to_bits()))
        }
    }

    /// The number as serde_json would write it.
    pub fn to_json(self) -> Number {
        match self.0 {
            NumberRepr::Integral(i) => {
                if let Ok(i) = i64::try_from(i) {
                    Number::from(i)
                } else if let Ok(u) = u64::try_from(i) {
                    Number::from(u)
                } else {
                    // Only a float can have produced this, so it is exact.
                    Number::from_f64(i as f64).unwrap_or_else(|| Number::from(0))
                }
            }
            NumberRepr::Fractional(bits) => {
                Number::from_f64(f64::from_bits(bits)).unwrap_or_else(|| Number::from(0))
            }
        }
    }
}

impl RoomValue {
    fn from_json(key: &str, value: &Value) -> Result<RoomValue, RoomError> {
        Ok(match value {
            Value::Null => RoomValue::Null,
            Value::Bool(b) => RoomValue::Bool(*b),
            Value::Number(n) => RoomValue::Number(RoomNumber::from_json(n)),
            Value::String(s) if s.len() > MAX_STRING_BYTES => {
                return Err(RoomError::ValueTooLong {
                    key: key.to_owned(),
                    len: s.len(),
                });
            }
            Value::String(s) => RoomValue::String(s.as_str().into()),
            Value::Array(_) | Value::Object(_) => {
                return Err(RoomError::NotScalar {
                    key: key.to_owned(),
                });
            }
        })
    }

    /// Is this the string `"*"`?
    pub fn is_wildcard(&self) -> bool {
        matches!(self, RoomValue::String(s) if &**s == WILDCARD)
    }

    pub fn to_json(&self) -> Value {
        match self {
            RoomValue::Null => Value::Null,
            RoomValue::Bool(b) => Value::Bool(*b),
            RoomValue::Number(n) => Value::Number(n.to_json()),
            RoomValue::String(s) => Value::String(s.to_string()),
        }
    }
}

impl fmt::Display for RoomValue {
    /// Canonical JSON: numbers as serde_json writes them, strings escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomValue::Null => f.write_str("null"),
            RoomValue::Bool(b) => write!(f, "{b}"),
            RoomValue::Number(n) => write!(f, "{}", n.to_json()),
            RoomValue::String(s) => write_json_str(f, s),
        }
    }
}

impl Serialize for RoomValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RoomValue::Null => serializer.serialize_unit(),
            RoomValue::Bool(b) => serializer.serialize_bool(*b),
            RoomValue::Number(n) => n.to_json().serialize(serializer),
            RoomValue::String(s) => serializer.serialize_str(s),
        }
    }
}

fn write_json_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    // Serializing a &str to JSON cannot fail.
    f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?)
}

/// A parsed room. Immutable and cheap to clone (one `Arc`).
///
/// Keys are sorted (byte order, the same as Python's `sort_keys`), so two
/// rooms that differ only in key order are equal and hash alike.
#[derive(Clone)]
pub struct Room(Arc<RoomInner>);

#[derive(PartialEq, Eq, Hash)]
struct RoomInner {
    keys: Box<[Arc<str>]>,
    values: Box<[RoomValue]>,
}

impl Room {
    /// Parse and validate a room. The empty object `{}` is a valid room; it
    /// matches and permits only `{}`.
    pub fn parse(value: &Value) -> Result<Room, RoomError> {
        let Value::Object(map) = value else {
            return Err(RoomError::NotAnObject);
        };
        if map.len() > MAX_KEYS {
            return Err(RoomError::TooManyKeys(map.len()));
        }
        let mut pairs = Vec::with_capacity(map.len());
        for (key, value) in map {
            if key.len() > MAX_KEY_BYTES {
                return Err(RoomError::KeyTooLong(key.len()));
            }
            pairs.push((
                Arc::<str>::from(key.as_str()),
                RoomValue::from_json(key, value)?,
            ));
        }
        // serde_json's map is already sorted unless `preserve_order` gets
        // enabled somewhere in the build; don't depend on that.
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (keys, values): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        Ok(Room(Arc::new(RoomInner {
            keys: keys.into(),
            values: values.into(),
        })))
    }

    /// Sorted key names. Rooms with the same key set are what the index
    /// groups together.
    pub fn keys(&self) -> &[Arc<str>] {
        &self.0.keys
    }

    /// Values, in the order of [`Room::keys`].
    pub fn values(&self) -> &[RoomValue] {
        &self.0.values
    }

    pub fn len(&self) -> usize {
        self.0.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.keys.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&RoomValue> {
        let i = self.0.keys.binary_search_by(|k| (**k).cmp(key)).ok()?;
        Some(&self.0.values[i])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &RoomValue)> {
        self.0.keys.iter().map(|k| &**k).zip(self.0.values.iter())
    }

    /// Does any value equal `"*"`?
    pub fn has_wildcard(&self) -> bool {
        self.0.values.iter().any(RoomValue::is_wildcard)
    }

    /// Permission check, `self` being an allowed room: `requested` has the
    /// same keys and each value is equal to ours or ours is `"*"`. A
    /// requested `"*"` therefore needs `"*"` here.
    pub fn permits(&self, requested: &Room) -> bool {
        self.keys() == requested.keys()
            && self
                .values()
                .iter()
                .zip(requested.values())
                .all(|(allowed, requested)| allowed.is_wildcard() || allowed == requested)
    }

    /// Delivery check, `self` being a published room: same keys, and per key
    /// the values are equal or either one is `"*"`. Symmetric.
    ///
    /// Callable as `Room::matches(&published, &subscription)`.
    pub fn matches(&self, subscription: &Room) -> bool {
        self.keys() == subscription.keys()
            && self
                .values()
                .iter()
                .zip(subscription.values())
                .all(|(p, s)| p == s || p.is_wildcard() || s.is_wildcard())
    }

    pub fn to_json(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(k, v)| (k.to_owned(), v.to_json()))
                .collect(),
        )
    }
}

impl PartialEq for Room {
    fn eq(&self, other: &Room) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Room {}

impl Hash for Room {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// high-templar's `Permission` ordering: `a < b` when `b` permits `a` and
/// they differ (`b` is broader). Rooms with different keys, or where each
/// has a `"*"` the other lacks, are incomparable.
impl PartialOrd for Room {
    fn partial_cmp(&self, other: &Room) -> Option<Ordering> {
        if self == other {
            Some(Ordering::Equal)
        } else if other.permits(self) {
            Some(Ordering::Less)
        } else if self.permits(other) {
            Some(Ordering::Greater)
        } else {
            None
        }
    }
}

impl fmt::Display for Room {
    /// Canonical JSON: sorted keys, no spaces, numbers by value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write_json_str(f, k)?;
            write!(f, ":{v}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Room({self})")
    }
}

impl Serialize for Room {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl TryFrom<&Value> for Room {
    type Error = RoomError;

    fn try_from(value: &Value) -> Result<Room, RoomError> {
        Room::parse(value)
    }
}

#[cfg(test)]
mod tests {
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
        let b =
            Room::parse(&serde_json::from_str(r#"{"customer":"1","target":"message"}"#).unwrap())
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
}
