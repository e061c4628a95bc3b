//! [`ConfigError`]: what is wrong with a config file, and where; the
//! [`KeyPath`] of a key and the [`Problem`] that validation finds at one.
//! How a problem or a toml error gets its line is in `report.rs`.

use std::{fmt, path::PathBuf};

/// Largest config file we read (1 MiB). A config is a few kilobytes; anything
/// bigger is a mistake (wrong file) or an attack on a watched path.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Why a config file was refused.
///
/// The reload watcher logs it and keeps the old config; `modhost run` prints
/// it and exits. Callers that branch do so on the variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, a folder, no permission).
    #[error("{}", io_message(path, io))]
    Io {
        /// The file we tried to read (absolute where possible).
        path: PathBuf,
        /// What the OS said.
        io: std::io::Error,
    },
    /// The file is bigger than [`MAX_CONFIG_BYTES`].
    #[error(
        "{}: the config file is {len} bytes, more than the limit of {MAX_CONFIG_BYTES} bytes (1 MiB)\nhint: is this the right file? a config.toml is a few kilobytes",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least this many).
        len: u64,
    },
    /// Not valid TOML (or not UTF-8).
    #[error("{0}")]
    Syntax(Diagnostic),
    /// A key the host does not know: a typo, or a key in the wrong table.
    #[error("{0}")]
    UnknownKey(Diagnostic),
    /// A value of the wrong type, or a required key missing.
    #[error("{0}")]
    Type(Diagnostic),
    /// Well-formed, but not a value the host accepts (out of range, empty
    /// token, unsafe combination).
    #[error("{0}")]
    Invalid(Diagnostic),
}

impl ConfigError {
    /// The located message, for every variant but `Io` and `TooLarge`.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            Self::Syntax(d) | Self::UnknownKey(d) | Self::Type(d) | Self::Invalid(d) => Some(d),
            Self::Io { .. } | Self::TooLarge { .. } => None,
        }
    }

    /// 1-based line of the offending key, when known.
    pub fn line(&self) -> Option<usize> {
        self.diagnostic().and_then(|d| d.position).map(|p| p.line)
    }
}

fn io_message(path: &std::path::Path, io: &std::io::Error) -> String {
    let path = path.display();
    if io.kind() == std::io::ErrorKind::NotFound {
        format!(
            "{path}: no such config file\nhint: create it (the repository's config.toml is a commented example), or choose another file with `modhost run --config FILE`"
        )
    } else {
        format!(
            "{path}: cannot read the config file: {io}\nhint: `modhost run --config FILE` chooses another file"
        )
    }
}

/// A message about one place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as given to `load`/`parse`.
    pub path: PathBuf,
    /// Where, when known (a problem with a default value has no place).
    pub position: Option<Position>,
    /// What is wrong, naming the key (`limits.send_queue must be at least 1`).
    pub message: String,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(Position { line, column }) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// The line and column of byte `offset` in `text`. Never panics: offsets
/// past the end or inside a character are clamped.
pub(crate) fn position(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.bytes().filter(|&b| b == b'\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Where a value lives in the document: `["auth", "tokens", 0, "user"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    /// The table a key sits in, in operator words: `[server]`,
    /// `[[auth.tokens]] entry 2`, or `the top level`.
    fn table_name(&self) -> String {
        let parent = &self.0[..self.0.len().saturating_sub(1)];
        if parent.is_empty() {
            return "the top level".to_owned();
        }
        match parent.split_last() {
            Some((Seg::Index(i), rest)) if !rest.iter().any(|s| matches!(s, Seg::Index(_))) => {
                format!("[[{}]] entry {}", KeyPath(rest.to_vec()), i + 1)
            }
            _ => format!("[{}]", KeyPath(parent.to_vec())),
        }
    }

    pub(crate) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Which kind of [`ConfigError`] a [`Problem`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    UnknownKey,
    Type,
    Invalid,
}

/// A validation failure from `raw.rs`, before it has a line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) kind: Kind,
    pub(crate) path: KeyPath,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Problem {
    pub(crate) fn invalid(
        path: &KeyPath,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::new(Kind::Invalid, path, message, hint)
    }

    pub(crate) fn wrong_type(
        path: &KeyPath,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::new(Kind::Type, path, message, hint)
    }

    pub(crate) fn new(
        kind: Kind,
        path: &KeyPath,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        let hint = hint.into();
        Self {
            kind,
            path: path.clone(),
            message: message.into(),
            hint: (!hint.is_empty()).then_some(hint),
        }
    }

    /// An unknown key with the allowed keys and, if one is close, a guess.
    pub(crate) fn unknown_key(path: &KeyPath, allowed: &[&str], extra: &str) -> Self {
        let key = path.last_key().unwrap_or_default();
        Self {
            kind: Kind::UnknownKey,
            path: path.clone(),
            message: format!("unknown key `{key}` in {}", path.table_name()),
            hint: Some(unknown_key_hint(key, path, allowed, extra)),
        }
    }
}

fn unknown_key_hint(key: &str, path: &KeyPath, allowed: &[&str], extra: &str) -> String {
    let mut hint = String::new();
    if let Some(best) = closest(key, allowed) {
        hint.push_str(&format!("did you mean `{best}`? "));
    }
    if allowed.is_empty() {
        hint.push_str(&format!("{} takes no keys", path.table_name()));
    } else {
        hint.push_str(&format!(
            "keys allowed in {}: {}",
            path.table_name(),
            allowed.join(", ")
        ));
    }
    if !extra.is_empty() {
        hint.push_str("; ");
        hint.push_str(extra);
    }
    hint
}

/// The allowed name closest to `key` within edit distance 2, if any (ties go
/// to the first in `allowed`).
pub(crate) fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(position(text, 0), Position { line: 1, column: 1 });
        assert_eq!(position(text, 6), Position { line: 2, column: 1 });
        // 'é' is two bytes; the '=' after it is the 4th character.
        assert_eq!(position(text, 10), Position { line: 2, column: 4 });
        // Inside a character and past the end: clamped, no panic.
        assert_eq!(position(text, 8), Position { line: 2, column: 2 });
        assert_eq!(position(text, 999), Position { line: 3, column: 1 });
    }

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("lisen", "listen"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("lisen", &["idle_timeout_secs", "listen"]),
            Some("listen")
        );
        assert_eq!(closest("porty", &["listen"]), None);
    }

    #[test]
    fn key_paths_display_like_toml() {
        let p = KeyPath::default()
            .key("auth")
            .key("tokens")
            .index(1)
            .key("user");
        assert_eq!(p.to_string(), "auth.tokens[1].user");
        assert_eq!(p.table_name(), "[[auth.tokens]] entry 2");
        assert_eq!(KeyPath::default().key("a b").to_string(), "\"a b\"");
        assert_eq!(KeyPath::default().key("x").table_name(), "the top level");
    }

    #[test]
    fn io_errors_name_the_file_and_the_flag() {
        let e = ConfigError::Io {
            path: "/etc/modhost/config.toml".into(),
            io: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("/etc/modhost/config.toml: no such config file"),
            "{s}"
        );
        assert!(s.contains("modhost run --config FILE"), "{s}");
    }
}
