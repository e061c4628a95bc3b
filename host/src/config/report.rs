//! Turning problems and toml/serde errors into [`ConfigError`]s with a
//! line and a hint.
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

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::{
    error::{ConfigError, Diagnostic, KeyPath, Kind, Problem, Seg, position},
    raw::RawConfig,
    shape,
};

impl Problem {
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
