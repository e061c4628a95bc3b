//! `cargo xtask layers [--dot]`: finds import circles between the source
//! files of `host/src` and `plugin-api/src`.
//!
//! A circle (`gateway/session.rs` uses `broker`, which uses `state`, which
//! uses `gateway`) means no file in it can be read, tested or replaced
//! without the others. The compiler does not mind, so this check does.
//!
//! # What counts as a file using another
//!
//! Every `.rs` file reached from a crate root (`lib.rs`, `main.rs`) through
//! `mod` declarations is a node. A file uses another when it names a module
//! of it with a path that starts with `crate::`, `super::` or `self::`, in a
//! `use` (including `{…}` groups, globs and renames) or anywhere in code
//! (`crate::gateway::MAX_PUBLISH_BYTES`). The path names the deepest module
//! it walks through: `crate::gateway::Outbox` names `gateway/mod.rs` (where
//! `Outbox` is re-exported), `crate::gateway::outbox::Outbox` names
//! `gateway/outbox.rs`. Re-exports are not followed: importing through a
//! folder's `mod.rs` is a use of that `mod.rs`, which is what the reader of
//! the importing file sees too. Inline modules (`mod x { … }`) belong to
//! the file they are written in.
//!
//! Three kinds of reference are left out, on purpose:
//! - **into the file's own child modules** (`gateway/mod.rs` naming
//!   `gateway::outbox`): the parent declares and contains them, so that is
//!   structure, not a dependency between peers. The other direction, a
//!   child using what its parent defines (`use super::Outbox`), is kept: it
//!   can close a circle through a third file;
//! - **test code**: everything under `#[cfg(test)]` (test modules, inline or
//!   in their own files, and test-only items). Tests use whatever they test,
//!   usually through `use super::*`, and ship in no binary;
//! - paths without a `crate`/`super`/`self` root (other crates, and a
//!   `mod.rs` naming its own children, which is the case above anyway).
//!
//! `$crate::` paths in macros and `pub(in …)` visibility are not uses.
//!
//! # What is printed
//!
//! Listing every elementary circle can take exponential time and pages, so
//! for every import edge that lies on a circle, the shortest circle through
//! it is printed (once, however many edges share it), each edge with the
//! first line that makes it. Every edge that has to go to break all circles
//! is therefore shown. `--dot` prints the whole graph for Graphviz instead,
//! with the edges on circles in red. Either way the command exits with 1 if
//! there is a circle.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

/// The crates checked: source folder and crate root files, from the
/// workspace root.
const CRATES: [(&str, &[&str]); 2] = [
    ("host/src", &["lib.rs", "main.rs"]),
    ("plugin-api/src", &["lib.rs"]),
];

/// `cargo xtask layers [--dot]`, run from the workspace `root`.
pub(crate) fn main(root: &Path, args: &[String]) -> Result<(), String> {
    let dot = match args {
        [] => false,
        [flag] if flag == "--dot" => true,
        _ => return Err("usage: cargo xtask layers [--dot]".to_owned()),
    };
    let crates: Vec<(PathBuf, Vec<String>)> = CRATES
        .iter()
        .map(|(dir, roots)| {
            (
                PathBuf::from(dir),
                roots.iter().map(|r| (*r).to_owned()).collect(),
            )
        })
        .collect();
    let graph = Graph::build(root, &crates)?;
    let cycles = graph.cycles();
    if dot {
        print!("{}", graph.dot(&cycles));
    } else {
        print!("{}", graph.report(&cycles));
    }
    if cycles.is_empty() {
        Ok(())
    } else {
        Err(format!("{} import circle(s) found", cycles.len()))
    }
}

// ---------------------------------------------------------------------------
// Tokens: just enough of Rust's lexer to never mistake a comment or a string
// for code.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `src` into identifiers, string literals and punctuation; drops
/// comments, numbers, char literals and lifetimes.
fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some((len, hashes)) = raw_string_start(&chars, i) {
            // r"…", r#"…"#, br"…", cr"…"
            i += len;
            let begin = i;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    break;
                }
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            let text: String = chars[begin..i.min(chars.len())].iter().collect();
            i += 1 + hashes;
            out.push(Token {
                tok: Tok::Str(text),
                line: start_line,
            });
        } else if c == '"' || ((c == 'b' || c == 'c') && at(i + 1) == '"') {
            i += if c == '"' { 1 } else { 2 };
            let mut text = String::new();
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    text.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    line += usize::from(chars[i] == '\n');
                    text.push(chars[i]);
                    i += 1;
                }
            }
            i += 1;
            out.push(Token {
                tok: Tok::Str(text),
                line: start_line,
            });
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            // A char literal ('x', '\n', b'x') or a lifetime ('a).
            let q = if c == 'b' { i + 1 } else { i };
            if at(q + 1) == '\\' {
                i = q + 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(q + 2) == '\'' {
                i = q + 3;
            } else {
                i = q + 1;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
            }
        } else if c == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
            // A raw identifier: r#type.
            let begin = i + 2;
            i = begin;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(chars[begin..i].iter().collect()),
                line,
            });
        } else if is_ident_start(c) {
            let begin = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(chars[begin..i].iter().collect()),
                line,
            });
        } else if c.is_ascii_digit() {
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    out
}

/// If a raw string starts at `i`: the length of its opening (`br##"`) and
/// its number of `#`.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && is_ident_char(chars[i - 1]) {
        return None;
    }
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    (chars.get(j) == Some(&'"')).then_some((j + 1 - i, hashes))
}

// ---------------------------------------------------------------------------
// Modules and references.

/// A path found in a file, before it is resolved to a module.
#[derive(Debug, Clone)]
struct Reference {
    file: usize,
    /// The module the path is written in (an inline module's own path).
    site: Vec<String>,
    /// `crate`, `super`, `self`, then names.
    segments: Vec<String>,
    line: usize,
}

/// One crate being read: its module tree and the references in it.
#[derive(Default)]
struct CrateScan {
    /// Module path → the file it is written in.
    modules: BTreeMap<Vec<String>, usize>,
    references: Vec<Reference>,
}

/// Files of all crates, by index.
#[derive(Default)]
struct Files {
    paths: Vec<PathBuf>,
    /// The module path of each file within its crate, and whether it is
    /// test-only.
    info: Vec<(usize, Vec<String>, bool)>,
}

impl Files {
    fn add(&mut self, path: PathBuf, krate: usize, module: Vec<String>, test: bool) -> usize {
        self.paths.push(path);
        self.info.push((krate, module, test));
        self.paths.len() - 1
    }
}

/// Reads `file` (module path `module`) and, recursively, the files of the
/// modules it declares.
fn scan_file(
    root: &Path,
    file: &Path,
    krate: usize,
    module: Vec<String>,
    test: bool,
    files: &mut Files,
    scan: &mut CrateScan,
) -> Result<(), String> {
    let text = fs::read_to_string(root.join(file))
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let id = files.add(file.to_owned(), krate, module.clone(), test);
    scan.modules.insert(module.clone(), id);
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let dir = file.parent().unwrap_or(Path::new("")).to_owned();
    // Where `mod x;` looks for x: beside a root or mod.rs, else in a folder
    // named after the file.
    let child_dir = if module.is_empty() || name == "mod.rs" {
        dir.clone()
    } else {
        dir.join(file.file_stem().unwrap_or_default())
    };
    let tokens = tokenize(&text);
    let mut walk = Walk {
        tokens: &tokens,
        i: 0,
        scopes: vec![Scope {
            module: Some(module),
            test,
            dir: child_dir,
        }],
        pending_test: false,
        pending_path: None,
        file_dir: dir.clone(),
    };
    let mut children = Vec::new();
    walk.run(id, &mut scan.references, &mut scan.modules, &mut children);
    for (child, child_file, child_test) in children {
        let path = child_file.unwrap_or_else(|| child.0.clone());
        let path = if root.join(&path).is_file() {
            path
        } else {
            match &child.1 {
                Some(alt) if root.join(alt).is_file() => alt.clone(),
                _ => {
                    return Err(format!(
                        "{}: module {} declared but neither {} nor its mod.rs exists",
                        file.display(),
                        child.2.join("::"),
                        path.display()
                    ));
                }
            }
        };
        scan_file(root, &path, krate, child.2, child_test, files, scan)?;
    }
    Ok(())
}

struct Scope {
    /// `Some` for a module's braces (or the file), with its path.
    module: Option<Vec<String>>,
    test: bool,
    /// Where this module's `mod x;` files are.
    dir: PathBuf,
}

/// `(candidate x.rs, candidate x/mod.rs, module path)` of a `mod x;`, the
/// `#[path]` file if given, and whether it is test-only.
type Child = (
    (PathBuf, Option<PathBuf>, Vec<String>),
    Option<PathBuf>,
    bool,
);

/// The token walk over one file.
struct Walk<'t> {
    tokens: &'t [Token],
    i: usize,
    scopes: Vec<Scope>,
    /// A `#[cfg(test)]` was seen and applies to the item being read.
    pending_test: bool,
    /// A `#[path = "…"]` was seen.
    pending_path: Option<String>,
    /// The folder of the file being walked.
    file_dir: PathBuf,
}

impl Walk<'_> {
    fn tok(&self, k: usize) -> Option<&Tok> {
        self.tokens.get(k).map(|t| &t.tok)
    }

    fn ident(&self, k: usize) -> Option<&str> {
        match self.tok(k) {
            Some(Tok::Ident(s)) => Some(s),
            _ => None,
        }
    }

    fn module(&self) -> Vec<String> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.module.clone())
            .unwrap_or_default()
    }

    fn in_test(&self) -> bool {
        self.pending_test || self.scopes.iter().any(|s| s.test)
    }

    fn run(
        &mut self,
        file: usize,
        refs: &mut Vec<Reference>,
        modules: &mut BTreeMap<Vec<String>, usize>,
        children: &mut Vec<Child>,
    ) {
        while self.i < self.tokens.len() {
            match self.tok(self.i).cloned() {
                Some(Tok::Punct('#')) => self.attribute(),
                Some(Tok::Punct('{')) => {
                    let test = self.in_test();
                    let dir = self
                        .scopes
                        .last()
                        .map(|s| s.dir.clone())
                        .unwrap_or_default();
                    self.scopes.push(Scope {
                        module: None,
                        test,
                        dir,
                    });
                    self.pending_test = false;
                    self.i += 1;
                }
                Some(Tok::Punct('}')) => {
                    if self.scopes.len() > 1 {
                        self.scopes.pop();
                    }
                    self.i += 1;
                }
                Some(Tok::Punct(';')) => {
                    self.pending_test = false;
                    self.pending_path = None;
                    self.i += 1;
                }
                Some(Tok::Ident(kw)) if kw == "mod" => self.module_item(file, modules, children),
                Some(Tok::Ident(kw)) if kw == "use" => {
                    let line = self.tokens[self.i].line;
                    self.i += 1;
                    let mut paths = Vec::new();
                    self.use_tree(Vec::new(), &mut paths);
                    // Step over anything left to the `;`, which the loop
                    // then sees (it ends the item).
                    while let Some(t) = self.tok(self.i) {
                        if t == &Tok::Punct(';') {
                            break;
                        }
                        self.i += 1;
                    }
                    if !self.in_test() {
                        for segments in paths {
                            self.push_ref(file, segments, line, refs);
                        }
                    }
                }
                Some(Tok::Ident(kw))
                    if matches!(kw.as_str(), "crate" | "super" | "self")
                        && self.tok(self.i + 1) == Some(&Tok::PathSep) =>
                {
                    let before = self.i.checked_sub(1).and_then(|k| self.tok(k));
                    let macro_or_vis = matches!(before, Some(Tok::Punct('$')))
                        || matches!(before, Some(Tok::Ident(s)) if s == "in")
                        || matches!(before, Some(Tok::PathSep));
                    let line = self.tokens[self.i].line;
                    let segments = self.path();
                    if !macro_or_vis && !self.in_test() {
                        self.push_ref(file, segments, line, refs);
                    }
                }
                _ => self.i += 1,
            }
        }
    }

    fn push_ref(&self, file: usize, segments: Vec<String>, line: usize, refs: &mut Vec<Reference>) {
        if matches!(
            segments.first().map(String::as_str),
            Some("crate" | "super" | "self")
        ) {
            refs.push(Reference {
                file,
                site: self.module(),
                segments,
                line,
            });
        }
    }

    /// `a::b::c` from the current token; stops before `::{`, `::*`, `::<`.
    fn path(&mut self) -> Vec<String> {
        let mut segments = Vec::new();
        while let Some(name) = self.ident(self.i) {
            segments.push(name.to_owned());
            self.i += 1;
            if self.tok(self.i) == Some(&Tok::PathSep)
                && matches!(self.tok(self.i + 1), Some(Tok::Ident(_)))
            {
                self.i += 1;
            } else {
                break;
            }
        }
        segments
    }

    /// One use tree (`a::b`, `a::{b, c::d}`, `a::*`, `a as b`) after
    /// `prefix`; leaves the walk after it (on `,`, `}` or past `;`).
    fn use_tree(&mut self, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        if self.tok(self.i) == Some(&Tok::PathSep) {
            // `use ::std::…`: another crate.
            self.i += 1;
        }
        loop {
            match self.tok(self.i).cloned() {
                Some(Tok::Ident(name)) => {
                    path.push(name);
                    self.i += 1;
                    if self.tok(self.i) == Some(&Tok::PathSep) {
                        self.i += 1;
                        continue;
                    }
                    if self.ident(self.i) == Some("as") {
                        self.i += 2;
                    }
                    out.push(path);
                    break;
                }
                Some(Tok::Punct('*')) => {
                    self.i += 1;
                    out.push(path);
                    break;
                }
                Some(Tok::Punct('{')) => {
                    self.i += 1;
                    loop {
                        match self.tok(self.i) {
                            Some(Tok::Punct('}')) => {
                                self.i += 1;
                                break;
                            }
                            Some(Tok::Punct(',')) => self.i += 1,
                            None => break,
                            _ => {
                                let before = self.i;
                                self.use_tree(path.clone(), out);
                                if self.i == before {
                                    self.i += 1;
                                }
                            }
                        }
                    }
                    break;
                }
                _ => break,
            }
        }
    }

    /// `#[…]` or `#![…]`: notes `cfg(test)` and `path = "…"`.
    fn attribute(&mut self) {
        let inner = self.tok(self.i + 1) == Some(&Tok::Punct('!'));
        let open = self.i + if inner { 2 } else { 1 };
        if self.tok(open) != Some(&Tok::Punct('[')) {
            self.i += 1;
            return;
        }
        let mut depth = 0;
        let mut k = open;
        let mut body = Vec::new();
        while let Some(t) = self.tok(k) {
            match t {
                Tok::Punct('[') => depth += 1,
                Tok::Punct(']') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            body.push(t.clone());
            k += 1;
        }
        self.i = k + 1;
        let name = |t: &Tok, s: &str| matches!(t, Tok::Ident(x) if x == s);
        let test_only = body.get(1).is_some_and(|t| name(t, "cfg"))
            && body.iter().any(|t| name(t, "test"))
            && !body.iter().any(|t| name(t, "not") || name(t, "any"));
        if test_only {
            if inner {
                if let Some(scope) = self.scopes.last_mut() {
                    scope.test = true;
                }
            } else {
                self.pending_test = true;
            }
        }
        if body.get(1).is_some_and(|t| name(t, "path"))
            && let Some(Tok::Str(p)) = body.get(3)
        {
            self.pending_path = Some(p.clone());
        }
    }

    /// `mod x;` (a child file) or `mod x { … }` (inline, same file).
    fn module_item(
        &mut self,
        file: usize,
        modules: &mut BTreeMap<Vec<String>, usize>,
        children: &mut Vec<Child>,
    ) {
        let Some(name) = self.ident(self.i + 1).map(str::to_owned) else {
            self.i += 1;
            return;
        };
        let test = self.in_test();
        let mut path = self.module();
        path.push(name.clone());
        let dir = self
            .scopes
            .last()
            .map(|s| s.dir.clone())
            .unwrap_or_default();
        match self.tok(self.i + 2) {
            Some(Tok::Punct(';')) => {
                let explicit = self.pending_path.take().map(|p| {
                    // #[path] is relative to the declaring file's folder,
                    // or inside an inline module to that module's folder.
                    let base = if self.scopes.len() == 1 {
                        self.file_dir.clone()
                    } else {
                        dir.clone()
                    };
                    base.join(p)
                });
                children.push((
                    (
                        dir.join(format!("{name}.rs")),
                        Some(dir.join(&name).join("mod.rs")),
                        path,
                    ),
                    explicit,
                    test,
                ));
                self.pending_test = false;
                self.i += 3;
            }
            Some(Tok::Punct('{')) => {
                modules.insert(path.clone(), file);
                self.scopes.push(Scope {
                    module: Some(path),
                    test,
                    dir: dir.join(&name),
                });
                self.pending_test = false;
                self.pending_path = None;
                self.i += 3;
            }
            _ => self.i += 1,
        }
    }
}

// ---------------------------------------------------------------------------
// The file graph.

/// Files and the uses between them.
struct Graph {
    files: Files,
    /// `from → to →` the first place `from` uses `to`: (line, path).
    edges: BTreeMap<usize, BTreeMap<usize, (usize, String)>>,
    /// `.rs` files under the source folders that no crate root reaches.
    orphans: Vec<PathBuf>,
}

/// A circle: files in order, the first one repeated at the end implied.
type Cycle = Vec<usize>;

impl Graph {
    /// Reads each crate in `crates` (source folder, root file names; both
    /// relative to `root`) and resolves every reference.
    fn build(root: &Path, crates: &[(PathBuf, Vec<String>)]) -> Result<Graph, String> {
        let mut files = Files::default();
        let mut scans = Vec::new();
        for (krate, (dir, roots)) in crates.iter().enumerate() {
            for root_file in roots {
                let path = dir.join(root_file);
                if !root.join(&path).is_file() {
                    continue;
                }
                let mut scan = CrateScan::default();
                scan_file(root, &path, krate, Vec::new(), false, &mut files, &mut scan)?;
                scans.push(scan);
            }
        }
        let mut edges: BTreeMap<usize, BTreeMap<usize, (usize, String)>> = BTreeMap::new();
        for scan in &scans {
            for r in &scan.references {
                let Some(to) = resolve(scan, r) else { continue };
                let (_, from_module, _) = &files.info[r.file];
                let (_, to_module, to_test) = &files.info[to];
                let into_own_child =
                    to_module.len() > from_module.len() && to_module.starts_with(from_module);
                if to == r.file || *to_test || into_own_child {
                    continue;
                }
                edges
                    .entry(r.file)
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| (r.line, r.segments.join("::")));
            }
        }
        let reached: BTreeSet<&PathBuf> = files.paths.iter().collect();
        let mut orphans = Vec::new();
        for (dir, _) in crates {
            for file in rs_files(&root.join(dir))? {
                let rel = file.strip_prefix(root).unwrap_or(&file).to_owned();
                if !reached.contains(&rel) {
                    orphans.push(rel);
                }
            }
        }
        Ok(Graph {
            files,
            edges,
            orphans,
        })
    }

    /// The non-test files: the nodes.
    fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.files.paths.len()).filter(|f| !self.files.info[*f].2)
    }

    fn successors(&self, f: usize) -> impl Iterator<Item = usize> + '_ {
        self.edges
            .get(&f)
            .into_iter()
            .flat_map(|m| m.keys().copied())
    }

    /// The shortest circle through every edge that lies on one, each
    /// circle once, shortest first.
    fn cycles(&self) -> Vec<Cycle> {
        let mut found = BTreeSet::new();
        for component in self.strongly_connected() {
            if component.len() < 2 {
                continue;
            }
            for &from in &component {
                for to in self.successors(from) {
                    if !component.contains(&to) {
                        continue;
                    }
                    // to ⇝ from, inside the component, then from → to.
                    if let Some(mut path) = self.shortest_path(to, from, &component) {
                        path.insert(0, from);
                        path.pop();
                        found.insert(rotate_to_min(path));
                    }
                }
            }
        }
        let mut cycles: Vec<Cycle> = found.into_iter().collect();
        cycles.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        cycles
    }

    /// Tarjan's algorithm, iterative over an explicit stack.
    fn strongly_connected(&self) -> Vec<BTreeSet<usize>> {
        let n = self.files.paths.len();
        let (mut index, mut low) = (vec![usize::MAX; n], vec![0; n]);
        let mut on_stack = vec![false; n];
        let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0);
        for start in self.nodes() {
            if index[start] != usize::MAX {
                continue;
            }
            // (node, its successors, position in them)
            let mut work: Vec<(usize, Vec<usize>, usize)> = Vec::new();
            index[start] = next;
            low[start] = next;
            next += 1;
            stack.push(start);
            on_stack[start] = true;
            work.push((start, self.successors(start).collect(), 0));
            while let Some((v, succ, pos)) = work.last_mut() {
                let v = *v;
                if let Some(&w) = succ.get(*pos) {
                    *pos += 1;
                    if index[w] == usize::MAX {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        work.push((w, self.successors(w).collect(), 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                work.pop();
                if let Some((parent, _, _)) = work.last() {
                    low[*parent] = low[*parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = BTreeSet::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.insert(w);
                        if w == v {
                            break;
                        }
                    }
                    out.push(component);
                }
            }
        }
        out
    }

    /// Breadth-first `from ⇝ to` within `allowed`, both ends included.
    fn shortest_path(
        &self,
        from: usize,
        to: usize,
        allowed: &BTreeSet<usize>,
    ) -> Option<Vec<usize>> {
        let mut previous = BTreeMap::from([(from, from)]);
        let mut queue = VecDeque::from([from]);
        while let Some(v) = queue.pop_front() {
            if v == to {
                let mut path = vec![to];
                let mut at = to;
                while at != from {
                    at = previous[&at];
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            for w in self.successors(v) {
                if allowed.contains(&w) && !previous.contains_key(&w) {
                    previous.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        None
    }

    fn name(&self, f: usize) -> String {
        self.files.paths[f].display().to_string()
    }

    /// The text report: counts, then each circle with the line behind
    /// each of its edges.
    fn report(&self, cycles: &[Cycle]) -> String {
        let mut out = String::new();
        let edge_count: usize = self.edges.values().map(BTreeMap::len).sum();
        let _ = writeln!(
            out,
            "layers: {} files, {} uses between them (test code left out)",
            self.nodes().count(),
            edge_count
        );
        for orphan in &self.orphans {
            let _ = writeln!(
                out,
                "note: {} is in no module tree; not checked",
                orphan.display()
            );
        }
        if cycles.is_empty() {
            let _ = writeln!(out, "no import circles");
            return out;
        }
        for (n, cycle) in cycles.iter().enumerate() {
            let names: Vec<String> = cycle
                .iter()
                .chain(cycle.first())
                .map(|f| self.name(*f))
                .collect();
            let _ = writeln!(
                out,
                "\ncircle {} ({} files): {}",
                n + 1,
                cycle.len(),
                names.join(" -> ")
            );
            for (k, &from) in cycle.iter().enumerate() {
                let to = cycle[(k + 1) % cycle.len()];
                let (line, path) = &self.edges[&from][&to];
                let _ = writeln!(out, "  {}:{line}: {path}", self.name(from));
            }
        }
        let _ = writeln!(out, "\n{} import circle(s)", cycles.len());
        out
    }

    /// The graph in Graphviz's dot language, edges on circles in red.
    fn dot(&self, cycles: &[Cycle]) -> String {
        let on_cycle: BTreeSet<(usize, usize)> = cycles
            .iter()
            .flat_map(|c| (0..c.len()).map(move |k| (c[k], c[(k + 1) % c.len()])))
            .collect();
        let mut out = String::from("digraph layers {\n  rankdir=LR;\n  node [shape=box];\n");
        for f in self.nodes() {
            let _ = writeln!(out, "  \"{}\";", self.name(f));
        }
        for (&from, targets) in &self.edges {
            for &to in targets.keys() {
                let colour = if on_cycle.contains(&(from, to)) {
                    " [color=red]"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\"{colour};",
                    self.name(from),
                    self.name(to)
                );
            }
        }
        out.push_str("}\n");
        out
    }
}

/// The file of the deepest module `r` walks through, `None` if its root
/// cannot be resolved (`super` above the crate root).
fn resolve(scan: &CrateScan, r: &Reference) -> Option<usize> {
    let mut module = r.site.clone();
    let mut rest = r.segments.iter().peekable();
    match rest.next().map(String::as_str) {
        Some("crate") => module.clear(),
        Some("self") => {}
        Some("super") => {
            module.pop()?;
            while rest.peek().is_some_and(|s| *s == "super") {
                rest.next();
                module.pop()?;
            }
        }
        _ => return None,
    }
    for name in rest {
        module.push(name.clone());
        if !scan.modules.contains_key(&module) {
            module.pop();
            break;
        }
    }
    scan.modules.get(&module).copied()
}

/// The same circle, starting at its smallest file index.
fn rotate_to_min(mut cycle: Cycle) -> Cycle {
    if let Some(k) = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, f)| **f)
        .map(|(k, _)| k)
    {
        cycle.rotate_left(k);
    }
    cycle
}

/// Every `.rs` file under `dir`, sorted.
fn rs_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let entries = fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot read {}: {e}", d.display()))?
                .path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
