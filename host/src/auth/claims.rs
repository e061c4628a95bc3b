//! Reading a principal out of JSON: JWT claims and bootstrap replies share
//! these rules, so a room list is validated the same way wherever it comes
//! from.

use serde_json::Value;

/// Follow a dotted `path` (Keycloak's `realm_access.roles`) into `root`.
///
/// A key that itself contains dots (Keycloak client ids often do) is found
/// when the whole remaining path is that key: `resource_access.my.app.roles`
/// does not work, but a top-level `"my.app"` claim can be named as
/// `my.app`. Each level first tries the whole remaining path as one key,
/// then the part up to the first dot.
pub(crate) fn lookup_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let obj = root.as_object()?;
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    lookup_path(obj.get(head)?, rest)
}

/// The user id at `path`: a non-empty string, or a number (some identity
/// providers use numeric ids), as text.
pub(crate) fn user_at(root: &Value, path: &str) -> Option<String> {
    match lookup_path(root, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Roles at `path`: the strings of an array (other elements ignored), a
/// single string as one role, and nothing for a missing claim or any other
/// type. Being lenient here can only take privileges away.
pub(crate) fn roles_at(root: &Value, path: &str) -> Vec<String> {
    roles_in(lookup_path(root, path))
}

/// Roles from a claim's value, by [`roles_at`]'s rules.
pub(crate) fn roles_in(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Room patterns from a JSON value: must be an array of objects. `None`
/// (claim or field absent) means no rooms.
pub(crate) fn rooms_from(value: Option<&Value>) -> Result<Vec<Value>, String> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if let Some((i, bad)) = items.iter().enumerate().find(|(_, v)| !v.is_object()) {
                return Err(format!("element {i} is {}, not an object", kind(bad)));
            }
            Ok(items.clone())
        }
        Some(other) => Err(format!("{}, not an array", kind(other))),
    }
}

/// A JSON value's type, for error messages (never its content, which may
/// be a secret). Integers and floats are told apart because a user id may
/// be the one but not the other.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
