//! Reading one crate: its module tree from `mod` declarations, and every
//! `crate::`/`super::`/`self::` path with the module it is written in. The
//! rules (what is test code, where `mod x;` lives) are in `layers.rs`.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use super::lex::{Tok, Token, tokenize};

/// A path found in a file, before it is resolved to a module.
#[derive(Debug, Clone)]
pub(super) struct Reference {
    pub(super) file: usize,
    /// The module the path is written in (an inline module's own path).
    pub(super) site: Vec<String>,
    /// `crate`, `super`, `self`, then names.
    pub(super) segments: Vec<String>,
    pub(super) line: usize,
}

/// One crate being read: its module tree and the references in it.
#[derive(Default)]
pub(super) struct CrateScan {
    /// Module path → the file it is written in.
    pub(super) modules: BTreeMap<Vec<String>, usize>,
    pub(super) references: Vec<Reference>,
}

/// Files of all crates, by index.
#[derive(Default)]
pub(super) struct Files {
    pub(super) paths: Vec<PathBuf>,
    /// The module path of each file within its crate, and whether it is
    /// test-only.
    pub(super) info: Vec<(usize, Vec<String>, bool)>,
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
pub(super) fn scan_file(
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
