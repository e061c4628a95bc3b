//! config.toml is the operator's documentation: it must show every declared
//! key, each setting with its declared default, and no key the host does
//! not know. The declarations are the truth; this test keeps the file in
//! step with them.

use std::collections::BTreeSet;

use crate::config::{
    EMBEDDED,
    error::{KeyPath, Seg},
    raw::RawConfig,
    settings::TABLES,
    shape::{self, Field, Shape},
};

/// A `key = value` line of config.toml, set or commented out (`# key = …`),
/// with the table it sits in.
#[derive(Debug)]
struct KeyLine {
    line: usize,
    path: KeyPath,
    /// `None` when the value continues on the next lines.
    value: Option<toml::Value>,
}

fn is_name(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || extra.contains(&c))
}

/// `[a.b]` or `[[a.b]]` (an entry of an array of tables) as a key path.
fn header(line: &str) -> Option<KeyPath> {
    let (inner, entries) = match line.strip_prefix("[[") {
        Some(rest) => (rest.strip_suffix("]]")?, true),
        None => (line.strip_prefix('[')?.strip_suffix(']')?, false),
    };
    if !is_name(inner, &['.']) {
        return None;
    }
    let mut path = KeyPath::default();
    for part in inner.split('.') {
        path = path.key(part);
    }
    Some(if entries { path.index(0) } else { path })
}

/// Every key line of `text`, commented or not, in order.
fn key_lines(text: &str) -> Vec<KeyLine> {
    let mut table = KeyPath::default();
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.strip_prefix("# ").unwrap_or(raw);
        if let Some(path) = header(line) {
            table = path;
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        if !is_name(key, &[]) {
            continue;
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"));
        out.push(KeyLine {
            line: n + 1,
            path: table.key(key),
            value,
        });
    }
    out
}

/// What a module's name becomes in [`normal`] paths (`modules._.enabled`).
const ANY_MODULE: &str = "_";

/// A path with every array index made 0 and every module name
/// [`ANY_MODULE`], so that config.toml's examples and the declarations
/// compare.
fn normal(path: &KeyPath) -> String {
    let modules_settings: Vec<&str> =
        match shape::declared_at(RawConfig::FIELDS, &KeyPath::default().key("modules"))
            .map(|(s, _)| s)
        {
            Some(Shape::Modules { settings, .. }) => settings.iter().map(|f| f.key).collect(),
            _ => panic!("[modules] is declared"),
        };
    let mut out = KeyPath::default();
    for (i, seg) in path.0.iter().enumerate() {
        out = match seg {
            Seg::Index(_) => out.index(0),
            Seg::Key(_) if i == 1 && out.to_string() == "apps" => out.key(ANY_MODULE),
            Seg::Key(k) if i == 1 && out.to_string() == "modules" => {
                let is_module = !modules_settings.contains(&k.as_str());
                out.key(if is_module { ANY_MODULE } else { k })
            }
            Seg::Key(k) => out.key(k),
        };
    }
    out.to_string()
}

/// Every declared key, normalized; the tables that only hold other tables
/// are represented by their keys.
fn declared(fields: &[Field], here: &KeyPath, out: &mut BTreeSet<String>) {
    for field in fields {
        let path = here.key(field.key);
        match field.shape {
            Shape::Table(sub) => declared(sub, &path, out),
            Shape::Entries(sub) => declared(sub, &path.index(0), out),
            Shape::Modules { settings, module } => {
                declared(settings, &path, out);
                declared(module, &path.key(ANY_MODULE), out);
            }
            Shape::Named(sub) => declared(sub, &path.key(ANY_MODULE), out),
            _ => {
                out.insert(normal(&path));
            }
        }
    }
}

#[test]
fn config_toml_names_only_declared_keys() {
    for line in key_lines(EMBEDDED) {
        let path = &line.path;
        // A module's own keys are free; only the host's are declared.
        let own_module_key = normal(path).starts_with(&format!("modules.{ANY_MODULE}."))
            && shape::declared_at(RawConfig::FIELDS, path).is_none();
        assert!(
            own_module_key || shape::declared_at(RawConfig::FIELDS, path).is_some(),
            "config.toml line {}: `{path}` is not a declared key",
            line.line
        );
    }
}

#[test]
fn config_toml_shows_every_declared_key() {
    let mut want = BTreeSet::new();
    declared(RawConfig::FIELDS, &KeyPath::default(), &mut want);
    let shown: BTreeSet<String> = key_lines(EMBEDDED)
        .iter()
        .map(|l| normal(&l.path))
        .collect();
    let missing: Vec<&String> = want.difference(&shown).collect();
    assert!(missing.is_empty(), "config.toml does not show {missing:?}");
}

#[test]
fn config_toml_shows_each_setting_with_its_declared_default() {
    let lines = key_lines(EMBEDDED);
    for (table, decls) in TABLES {
        for decl in *decls {
            let table = table.replace("<name>", ANY_MODULE);
            let name = format!("{table}.{}", decl.key);
            let at_key: Vec<&KeyLine> = lines.iter().filter(|l| normal(&l.path) == name).collect();
            assert!(!at_key.is_empty(), "config.toml does not show {name}");
            let Some(default) = (decl.default_toml)() else {
                continue;
            };
            let want = toml::from_str::<toml::Table>(&format!("v = {default}"))
                .unwrap_or_else(|e| panic!("{name}'s default {default} is not TOML: {e}"))
                .remove("v");
            assert!(
                at_key.iter().any(|l| l.value == want),
                "config.toml shows {name} only as {:?}, not with its default {default}",
                at_key.iter().map(|l| &l.value).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn the_checks_see_commented_and_set_keys() {
    let lines =
        key_lines("[a]\nx = 1\n# [b.c]\n# y = \"z\"  # why\n# prose = text\n[[d]]\nw = [\n");
    let shown: Vec<(String, Option<toml::Value>)> = lines
        .into_iter()
        .map(|l| (l.path.to_string(), l.value))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("a.x".to_owned(), Some(toml::Value::Integer(1))),
            ("b.c.y".to_owned(), Some(toml::Value::String("z".into()))),
            ("b.c.prose".to_owned(), None),
            ("d[0].w".to_owned(), None),
        ]
    );
}
