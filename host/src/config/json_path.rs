//! [`JsonPath`]: a dotted path into a JSON document, as config.toml writes
//! it (`[auth.bootstrap] user_id_path = "user.id"`), checked once when the
//! file is read so that following it at run time cannot fail.
//!
//! Each segment names a key of a nested object, from the top level down.
//! Segments are plain keys: there are no array indexes or wildcards, and a
//! key that itself contains a dot cannot be named. That keeps a path's
//! meaning obvious from its text, which matters because it decides who a
//! client is.

use std::fmt;

use serde_json::Value;

/// Longest path accepted, in bytes. Real paths are a few words; a bound
/// keeps a pasted document out of every log line that names the path.
pub const MAX_JSON_PATH_BYTES: usize = 256;

/// Most segments a path may have. Identity replies nest a level or two.
pub const MAX_JSON_PATH_SEGMENTS: usize = 16;

/// A checked dotted path: non-empty segments, bounded, no spaces or
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
}

/// Why a text is not a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonPathError {
    /// `""`.
    #[error("the path is empty")]
    Empty,
    /// `"user..id"`, `".id"`, `"user."`; `segment` counts from 1.
    #[error("segment {segment} is empty (two dots in a row, or a dot at an end)")]
    EmptySegment {
        /// Which segment, from 1.
        segment: usize,
    },
    /// Longer than [`MAX_JSON_PATH_BYTES`].
    #[error("the path is {len} bytes, more than {MAX_JSON_PATH_BYTES}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// More than [`MAX_JSON_PATH_SEGMENTS`] segments.
    #[error("the path has {segments} segments, more than {MAX_JSON_PATH_SEGMENTS}")]
    TooDeep {
        /// How many it has.
        segments: usize,
    },
    /// A space or control character: almost always a typo, and reply keys
    /// do not have them.
    #[error("the path contains whitespace or a control character")]
    Whitespace,
}

/// What is in the way when a path leads through something that is not an
/// object: `user.id` against `{"user": "bob"}` stops at `user`.
#[derive(Debug, Clone, PartialEq)]
pub struct PathBlocked<'a> {
    /// The part of the path that was found (`user`).
    pub at: String,
    /// The value found there, which is neither an object nor null.
    pub found: &'a Value,
}

impl JsonPath {
    /// Check `text`.
    pub fn parse(text: &str) -> Result<JsonPath, JsonPathError> {
        if text.is_empty() {
            return Err(JsonPathError::Empty);
        }
        if text.len() > MAX_JSON_PATH_BYTES {
            return Err(JsonPathError::TooLong { len: text.len() });
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(JsonPathError::Whitespace);
        }
        if let Some(i) = text.split('.').position(str::is_empty) {
            return Err(JsonPathError::EmptySegment { segment: i + 1 });
        }
        let segments = text.split('.').count();
        if segments > MAX_JSON_PATH_SEGMENTS {
            return Err(JsonPathError::TooDeep { segments });
        }
        Ok(JsonPath {
            text: text.to_owned(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The keys, from the top level down.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.text.split('.')
    }

    /// The value at this path in `root`. `Ok(None)` when a key is missing
    /// or a level on the way is `null` (the document has nothing there);
    /// `Err` when a level on the way is some other non-object, which means
    /// the path does not fit the document's shape.
    pub fn lookup<'a>(&self, root: &'a Value) -> Result<Option<&'a Value>, PathBlocked<'a>> {
        let mut here = root;
        for (walked, key) in self.segments().enumerate() {
            match here {
                Value::Object(fields) => match fields.get(key) {
                    Some(next) => here = next,
                    None => return Ok(None),
                },
                Value::Null => return Ok(None),
                other => {
                    return Err(PathBlocked {
                        at: self.prefix(walked),
                        found: other,
                    });
                }
            }
        }
        Ok(Some(here))
    }

    /// The first `n` segments, joined (`""` for none: the document itself).
    fn prefix(&self, n: usize) -> String {
        self.segments().take(n).collect::<Vec<_>>().join(".")
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for JsonPath {
    type Err = JsonPathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JsonPath::parse(s)
    }
}
