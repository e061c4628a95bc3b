//! [`ConfigError`]: what is wrong with a config file, and where.
//!
//! Every error an operator can fix by editing the file is shown as
//! `path:line:column: message`, followed by a `hint:` line when we know the
//! fix. The line points at the offending key, not at the table header, so an
//! editor's "go to line" lands on it.
//!
//! Locations come from two directions, never from an error's text:
//! - toml and serde errors carry a byte span; [`path_at`] finds the key that
//!   span belongs to, so the message can name it (`server.listen`);
//! - the key check (`shape.rs`) and validation know the key path
//!   (`limits.send_queue`) but not where it is; [`span_of`] walks the parsed
//!   document to find its line.
//!
//! Both walk the same spanned document (`toml::de::DeTable`), which keeps the
//! raw serde structs free of `Spanned<T>` wrappers.

use std::{fmt, ops::Range, path::PathBuf};

use toml::de::{DeTable, DeValue};

use super::{raw::RawConfig, shape};

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

    fn last_key(&self) -> Option<&str> {
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

    /// Attach a line number (looked up in `doc`) and the file name.
    pub(crate) fn into_error(self, ctx: &Ctx<'_>) -> ConfigError {
        let span = ctx.doc.and_then(|doc| span_of(doc, &self.path));
        let d = ctx.diagnostic(span, self.message, self.hint);
        match self.kind {
            Kind::UnknownKey => ConfigError::UnknownKey(d),
            Kind::Type => ConfigError::Type(d),
            Kind::Invalid => ConfigError::Invalid(d),
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

/// What error conversion needs: the file name, its text, and (once it
/// parsed) the spanned document.
pub(crate) struct Ctx<'a> {
    pub(crate) path: &'a std::path::Path,
    pub(crate) text: &'a str,
    pub(crate) doc: Option<&'a DeTable<'a>>,
}

impl Ctx<'_> {
    fn diagnostic(
        &self,
        span: Option<Range<usize>>,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            path: self.path.to_path_buf(),
            position: span.map(|s| position(self.text, s.start)),
            message,
            hint,
        }
    }

    /// A TOML syntax error (the document did not parse).
    pub(crate) fn syntax(&self, err: &toml::de::Error) -> ConfigError {
        let mut message = err.message().trim().replace('\n', "; ");
        if let Some(short) = message.strip_suffix(", expected nothing") {
            message = short.to_owned();
        }
        let span = err.span();
        let snippet = span
            .as_ref()
            .and_then(|s| self.text.get(s.clone()))
            .filter(|s| !s.is_empty() && s.len() <= 64 && !s.contains('\n'));
        if let (true, Some(key)) = (message == "duplicate key", snippet) {
            message = format!("duplicate key `{key}`");
        }
        let line = span.as_ref().map(|s| line_at(self.text, s.start));
        let hint = syntax_hint(&message, line);
        ConfigError::Syntax(self.diagnostic(span, message, hint))
    }

    /// Text that is not UTF-8; `valid_up_to` is where the bad byte is.
    pub(crate) fn not_utf8(&self, valid_up_to: usize) -> ConfigError {
        ConfigError::Syntax(self.diagnostic(
            Some(valid_up_to..valid_up_to),
            "the file is not valid UTF-8".to_owned(),
            Some("TOML files are UTF-8 text; re-save the file as UTF-8".to_owned()),
        ))
    }

    /// An error from deserializing the parsed document into the raw
    /// structs: a value of the wrong type or a missing required key
    /// (unknown keys were found before, by `shape::check`). serde's span
    /// locates it; the key it belongs to and the hint come from the
    /// document and the declared shape, not from the message text.
    pub(crate) fn serde(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span();
        let key_path = match (self.doc, &span) {
            (Some(doc), Some(span)) => path_at(doc, span),
            _ => None,
        };
        let hint = match (self.doc, &key_path) {
            (Some(doc), Some(path)) => shape::type_hint(doc, RawConfig::FIELDS, path),
            _ => None,
        };
        let message = friendlier(err.message().trim());
        let message = match key_path {
            Some(p) if !p.0.is_empty() => format!("{p}: {message}"),
            _ => message,
        };
        ConfigError::Type(self.diagnostic(span, message, hint))
    }
}

/// serde speaks Rust (`expected u64`); operators read TOML.
fn friendlier(message: &str) -> String {
    message
        .replace("expected usize", "expected a whole number")
        .replace("expected u64", "expected a whole number")
        .replace("expected u32", "expected a whole number")
        .replace("expected i64", "expected a whole number")
        .replace("expected a sequence", "expected an array")
        .replace("expected a boolean", "expected true or false")
}

fn syntax_hint(message: &str, line: Option<&str>) -> Option<String> {
    let m = message.to_ascii_lowercase();
    let hint = if m.contains("duplicate key") {
        "a key may appear only once in a table, and a [table] header only once; use [[name]] for a list of tables"
    } else if let Some((key, value)) = line.and_then(|l| l.split_once('=')) {
        // `listen = 127.0.0.1:8080`: text without quotes fails as a number.
        let value = value.split(" #").next().unwrap_or_default().trim();
        let structured = value.starts_with(['"', '\'', '[', '{']);
        let looks_like_text = value
            .chars()
            .any(|c| c.is_alphabetic() || matches!(c, ':' | '/' | '.'));
        if structured || !looks_like_text || value == "true" || value == "false" {
            return None;
        }
        return Some(format!(
            "if this is text, put it in quotes: {} = \"{value}\"",
            key.trim()
        ));
    } else {
        return None;
    };
    Some(hint.to_owned())
}

/// The line of `text` that contains byte `offset`.
fn line_at(text: &str, offset: usize) -> &str {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    &text[start..end]
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

/// The key path of the key or value whose span is exactly `span` (the
/// deepest one, since implicit parent tables can share a span).
fn path_at(doc: &DeTable<'_>, span: &Range<usize>) -> Option<KeyPath> {
    fn walk_value(
        value: &toml::Spanned<DeValue<'_>>,
        here: &KeyPath,
        span: &Range<usize>,
        best: &mut Option<KeyPath>,
    ) {
        if value.span() == *span && best.as_ref().is_none_or(|b| b.0.len() <= here.0.len()) {
            *best = Some(here.clone());
        }
        match value.get_ref() {
            DeValue::Table(t) => walk_table(t, here, span, best),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    walk_value(item, &here.index(i), span, best);
                }
            }
            _ => {}
        }
    }
    fn walk_table(
        table: &DeTable<'_>,
        here: &KeyPath,
        span: &Range<usize>,
        best: &mut Option<KeyPath>,
    ) {
        for (key, value) in table.iter() {
            let path = here.key(key.get_ref());
            if key.span() == *span && best.as_ref().is_none_or(|b| b.0.len() <= path.0.len()) {
                *best = Some(path.clone());
            }
            walk_value(value, &path, span, best);
        }
    }
    let mut best = None;
    walk_table(doc, &KeyPath::default(), span, &mut best);
    best
}

/// Where the key at `path` is written: the key's span for a table key, the
/// element's span for an array index. Falls back to the deepest part of the
/// path that exists (a missing key is reported at its table).
fn span_of(doc: &DeTable<'_>, path: &KeyPath) -> Option<Range<usize>> {
    let mut found = None;
    let mut here: Option<&DeValue<'_>> = None; // None: the document root
    for seg in &path.0 {
        let value = match (seg, here) {
            (Seg::Key(k), None) => doc.get_key_value(k.as_str()).map(|(k, v)| (k.span(), v)),
            (Seg::Key(k), Some(DeValue::Table(t))) => {
                t.get_key_value(k.as_str()).map(|(k, v)| (k.span(), v))
            }
            // An array element has no key; its own span stands in.
            (Seg::Index(n), Some(DeValue::Array(a))) => a.get(*n).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((span, value)) = value else { break };
        found = Some(span);
        here = Some(value.get_ref());
    }
    found
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
