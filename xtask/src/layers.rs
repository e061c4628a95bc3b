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

mod lex;
mod scan;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use scan::{CrateScan, Files, Reference, scan_file};

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
