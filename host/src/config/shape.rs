//! The file's shape: which keys each table allows, and what kind of value
//! each holds — taken from the raw structs, checked by walking the parsed
//! document.
//!
//! Every raw struct (the `section!` tables in `settings.rs` and the
//! `keyed!` structs in `raw.rs`) lists its fields as [`Field`]s, and each
//! field's [`Shape`] comes from its Rust type through [`Shaped`]
//! (`Option<RawJwt>` is the table `RawJwt::FIELDS`, `u64` a number). So the
//! tree below `RawConfig::FIELDS` *is* the file's schema, written nowhere
//! else.
//!
//! Two things use it:
//! - [`check`] finds unknown keys before serde runs, from the document's own
//!   keys and spans. serde is told to ignore unknown keys, so its error text
//!   is never taken apart to find a key;
//! - [`type_hint`] turns a serde type error into advice by looking at what
//!   was written where the error points and what the shape expects there.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::error::{KeyPath, Problem, Seg};

/// One key of a table: its name and what it holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) key: &'static str,
    pub(crate) shape: Shape,
    /// What the key means, from its declaration ("" where undeclared):
    /// the hint when its value has the wrong type.
    pub(crate) what: &'static str,
}

/// What a key holds, as far as key checking and hints care.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// A whole number (`u64` in the raw struct).
    Number,
    /// `true` or `false`.
    Bool,
    /// A string, or for `OneOrMany` a string or an array of strings.
    Text,
    /// An array of plain values.
    Array,
    /// Anything; not looked into (room patterns, module tables' own keys).
    Any,
    /// A table with these keys.
    Table(&'static [Field]),
    /// `[[name]]`: an array of tables with these keys.
    Entries(&'static [Field]),
    /// `[modules]`: `settings`, and any other key is a module's table:
    /// `module` lists the keys the host reads there; the rest are the
    /// module's own and never unknown.
    Modules {
        settings: &'static [Field],
        module: &'static [Field],
    },
    /// `[apps]`: any key is a table with these keys (`[apps.<name>]`).
    Named(&'static [Field]),
}

/// Rust types that know their [`Shape`]: the raw structs' field types.
pub(crate) trait Shaped {
    /// The shape a key of this type has in the file.
    const SHAPE: Shape;
}

impl Shaped for u64 {
    const SHAPE: Shape = Shape::Number;
}
impl Shaped for bool {
    const SHAPE: Shape = Shape::Bool;
}
impl Shaped for String {
    const SHAPE: Shape = Shape::Text;
}
impl Shaped for toml::Value {
    const SHAPE: Shape = Shape::Any;
}
impl<T: Shaped> Shaped for Option<T> {
    const SHAPE: Shape = T::SHAPE;
}
impl<T: Shaped> Shaped for std::collections::BTreeMap<String, T> {
    const SHAPE: Shape = match T::SHAPE {
        Shape::Table(fields) => Shape::Named(fields),
        _ => Shape::Any,
    };
}
impl<T: Shaped> Shaped for Vec<T> {
    const SHAPE: Shape = match T::SHAPE {
        Shape::Table(fields) => Shape::Entries(fields),
        _ => Shape::Array,
    };
}

/// The keys of `fields`, for "keys allowed in …" hints.
fn names(fields: &[Field]) -> Vec<&'static str> {
    fields.iter().map(|f| f.key).collect()
}

fn find(fields: &[Field], key: &str) -> Option<Shape> {
    fields.iter().find(|f| f.key == key).map(|f| f.shape)
}

/// The first unknown key in the document (by position), as a [`Problem`].
///
/// `fields` is the top level's (`RawConfig::FIELDS`). Values of the wrong
/// kind are left alone here: serde reports those, with their spans.
pub(crate) fn check(doc: &DeTable<'_>, fields: &'static [Field]) -> Result<(), Problem> {
    let mut first: Option<(usize, Problem)> = None;
    walk_table(doc, &KeyPath::default(), fields, &mut first);
    match first {
        Some((_, problem)) => Err(problem),
        None => Ok(()),
    }
}

type Found = Option<(usize, Problem)>;

/// Keep the problem that comes first in the file: the document is a map
/// sorted by key, not by position.
fn keep(first: &mut Found, span: Range<usize>, problem: Problem) {
    if first.as_ref().is_none_or(|(at, _)| span.start < *at) {
        *first = Some((span.start, problem));
    }
}

fn walk_table(table: &DeTable<'_>, here: &KeyPath, fields: &'static [Field], first: &mut Found) {
    for (key, value) in table.iter() {
        let path = here.key(key.get_ref());
        match find(fields, key.get_ref()) {
            Some(shape) => walk_value(value.get_ref(), &path, shape, first),
            None => keep(
                first,
                key.span(),
                Problem::unknown_key(&path, &names(fields), ""),
            ),
        }
    }
}

fn walk_value(value: &DeValue<'_>, path: &KeyPath, shape: Shape, first: &mut Found) {
    match (shape, value) {
        (Shape::Table(fields), DeValue::Table(t)) => walk_table(t, path, fields, first),
        (Shape::Entries(fields), DeValue::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let DeValue::Table(t) = item.get_ref() {
                    walk_table(t, &path.index(i), fields, first);
                }
            }
        }
        (Shape::Modules { settings, .. }, DeValue::Table(t)) => {
            walk_modules(t, path, settings, first);
        }
        (Shape::Named(fields), DeValue::Table(t)) => {
            for (key, value) in t.iter() {
                if let DeValue::Table(entry) = value.get_ref() {
                    walk_table(entry, &path.key(key.get_ref()), fields, first);
                }
            }
        }
        _ => {}
    }
}

/// `[modules]`: a key that is not a setting must be a module's table.
fn walk_modules(table: &DeTable<'_>, here: &KeyPath, settings: &[Field], first: &mut Found) {
    for (key, value) in table.iter() {
        let name = key.get_ref();
        if find(settings, name).is_some() || value.get_ref().is_table() {
            continue;
        }
        let extra = format!("any other key must be a module's table, e.g. [modules.{name}]");
        keep(
            first,
            key.span(),
            Problem::unknown_key(&here.key(name), &names(settings), &extra),
        );
    }
}

/// The shape the file expects at `path`, if the path is declared.
/// Also says, where a declared key is there, what it means.
pub(crate) fn declared_at(
    fields: &'static [Field],
    path: &KeyPath,
) -> Option<(Shape, &'static str)> {
    let mut here = (Shape::Table(fields), "");
    for seg in &path.0 {
        here = match (here.0, seg) {
            (Shape::Table(f), Seg::Key(k)) => field(f, k)?,
            (Shape::Entries(f), Seg::Index(_)) => (Shape::Table(f), ""),
            (Shape::Modules { settings, module }, Seg::Key(k)) => {
                field(settings, k).unwrap_or((Shape::Table(module), ""))
            }
            (Shape::Named(f), Seg::Key(_)) => (Shape::Table(f), ""),
            _ => return None,
        };
    }
    Some(here)
}

fn field(fields: &[Field], key: &str) -> Option<(Shape, &'static str)> {
    fields
        .iter()
        .find(|f| f.key == key)
        .map(|f| (f.shape, f.what))
}

/// The written value at `path`, if there is one.
fn written<'a>(doc: &'a DeTable<'a>, path: &KeyPath) -> Option<&'a DeValue<'a>> {
    let mut here: Option<&DeValue<'_>> = None; // None: the document itself
    for seg in &path.0 {
        let next = match (seg, here) {
            (Seg::Key(k), None) => doc.get(k.as_str()),
            (Seg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
            (Seg::Index(n), Some(DeValue::Array(a))) => a.get(*n),
            _ => None,
        }?;
        here = Some(next.get_ref());
    }
    here
}

/// Advice for a serde type error at `path`, from what is written there and
/// what the declaration expects (never from serde's message text).
pub(crate) fn type_hint(
    doc: &DeTable<'_>,
    fields: &'static [Field],
    path: &KeyPath,
) -> Option<String> {
    let value = written(doc, path)?;
    let (expected, what) = declared_at(fields, path).unzip();
    let hint = match (expected, value) {
        (Some(Shape::Number), DeValue::Integer(i)) if i.as_str().starts_with('-') => {
            "this value cannot be negative".to_owned()
        }
        (Some(Shape::Number), DeValue::String(_)) => "write numbers without quotes".to_owned(),
        // serde stops at a table that lacks a required key.
        (Some(Shape::Table(_)), DeValue::Table(_)) => {
            "add the key; see the repository's config.toml for an example".to_owned()
        }
        // `[modules.dir]`: a setting's name used as a module's.
        (Some(_), DeValue::Table(_)) if is_modules_setting(path) => {
            format!("{path} is a [modules] setting, so it cannot be a module name")
        }
        // Otherwise say what the key is for (and so what it takes).
        _ => match (path.last_key(), what) {
            (Some(key), Some(what)) if !what.is_empty() => format!("`{key}`: {what}"),
            _ => return None,
        },
    };
    Some(hint)
}

/// `modules.<key>` where `<key>` is a setting, not a module.
fn is_modules_setting(path: &KeyPath) -> bool {
    matches!(path.0.as_slice(), [Seg::Key(m), Seg::Key(_)] if m == "modules")
}
