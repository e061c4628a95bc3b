//! Plain value checks shared by the tables: TOML values as module JSON
//! and as words in messages, and secrets that must be exact.

use super::error::{KeyPath, Problem};

/// TOML → JSON: datetimes become their TOML text; NaN and infinities have no
/// JSON form and are refused.
pub(super) fn to_json(value: &toml::Value, path: &KeyPath) -> Result<serde_json::Value, Problem> {
    use serde_json::Value as J;
    Ok(match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => J::Number(n),
            None => {
                return Err(Problem::invalid(
                    path,
                    format!("{path} = {f} has no JSON form"),
                    "nan and inf cannot be handed to a module; use a string or a finite number",
                ));
            }
        },
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &path.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v, &path.key(k))?)))
                .collect::<Result<_, Problem>>()?,
        ),
    })
}

/// "a string", "an array", … for messages.
pub(super) fn describe(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// A secret or name that must be non-empty and have no surrounding spaces
/// (an HTTP header value is trimmed, so a padded token could never match).
pub(super) fn token_text(path: &KeyPath, value: &str, what: &str) -> Result<String, Problem> {
    if value.is_empty() {
        return Err(Problem::invalid(
            path,
            format!("{path} is empty"),
            format!("give {what}"),
        ));
    }
    if value.trim() != value {
        return Err(Problem::invalid(
            path,
            format!("{path} starts or ends with whitespace"),
            "remove the spaces; clients could never present it exactly",
        ));
    }
    Ok(value.to_owned())
}
