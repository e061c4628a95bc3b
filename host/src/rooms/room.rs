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
mod tests;
