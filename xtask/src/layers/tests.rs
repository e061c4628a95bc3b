//! Tests for `layers`: the two fixtures under `xtask/fixtures/layers/`, one
//! with a circle and one without, plus the lexer's traps.

use super::lex::{Tok, tokenize};
use super::*;

fn fixture(name: &str) -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/layers")
        .join(name);
    Graph::build(&root, &[(PathBuf::from("src"), vec!["lib.rs".to_owned()])]).unwrap()
}

/// Every edge as `from -> to` file names.
fn edges(g: &Graph) -> Vec<String> {
    g.edges
        .iter()
        .flat_map(|(from, tos)| {
            tos.keys()
                .map(move |to| format!("{} -> {}", g.name(*from), g.name(*to)))
        })
        .collect()
}

fn cycle_names(g: &Graph) -> Vec<Vec<String>> {
    g.cycles()
        .iter()
        .map(|c| c.iter().map(|f| g.name(*f)).collect())
        .collect()
}

#[test]
fn finds_the_one_circle_and_nothing_else() {
    let g = fixture("circle");
    assert_eq!(
        edges(&g),
        [
            "src/a.rs -> src/b.rs",
            "src/b.rs -> src/a.rs",
            "src/b.rs -> src/c/mod.rs",
            "src/c/inner.rs -> src/c/mod.rs",
        ]
    );
    assert_eq!(cycle_names(&g), [["src/a.rs", "src/b.rs"]]);
    let report = g.report(&g.cycles());
    assert!(
        report.contains("circle 1 (2 files): src/a.rs -> src/b.rs -> src/a.rs"),
        "{report}"
    );
    assert!(report.contains("src/b.rs:3: crate::a::a"), "{report}");
    assert!(report.contains("src/a.rs:1: crate::b"), "{report}");
    let dot = g.dot(&g.cycles());
    assert!(
        dot.contains("\"src/b.rs\" -> \"src/a.rs\" [color=red];"),
        "{dot}"
    );
    assert!(dot.contains("\"src/b.rs\" -> \"src/c/mod.rs\";"), "{dot}");
}

#[test]
fn no_circle_in_the_clean_fixture() {
    let g = fixture("clean");
    assert_eq!(
        edges(&g),
        [
            "src/a.rs -> src/b.rs",
            "src/b.rs -> src/c/mod.rs",
            "src/c/inner.rs -> src/c/mod.rs",
        ]
    );
    assert!(g.cycles().is_empty());
    assert!(g.report(&[]).contains("no import circles"));
    // The test module file is read but is no node.
    assert!(g.files.paths.iter().any(|p| p.ends_with("c/tests.rs")));
    assert_eq!(g.nodes().count(), 5);
}

#[test]
fn longer_circles_are_found_once() {
    // a → b → c → a plus a shortcut b → a: two circles, each printed once.
    let mut g = fixture("clean");
    let id = |g: &Graph, name: &str| {
        g.files
            .paths
            .iter()
            .position(|p| p.ends_with(name))
            .unwrap()
    };
    let (a, b, c) = (
        id(&g, "src/a.rs"),
        id(&g, "src/b.rs"),
        id(&g, "src/c/mod.rs"),
    );
    g.edges
        .entry(c)
        .or_default()
        .insert(a, (1, "crate::a".into()));
    g.edges
        .entry(b)
        .or_default()
        .insert(a, (1, "crate::a".into()));
    assert_eq!(g.cycles(), [vec![a, b], vec![a, b, c]]);
}

#[test]
fn lexer_skips_comments_strings_chars_and_lifetimes() {
    let src = "/* crate::x /* nested */ */ fn f<'a>(c: char) -> &'a str { let _ = ('\"', '\\'', b'x'); \"crate::y\\\"\" } r##\"crate::z\"##; crate::w";
    let idents: Vec<String> = tokenize(src)
        .into_iter()
        .filter_map(|t| match t.tok {
            Tok::Ident(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(
        idents,
        ["fn", "f", "c", "char", "str", "let", "_", "crate", "w"]
    );
}
