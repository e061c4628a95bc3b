//! The repository is self-contained for its readers (issue 16 item 8): every
//! `DESIGN §n` and `ABI_NOTES §n` the code and docs cite is a section of
//! the copy in `docs/`, every relative link in the Markdown documents
//! leads to a file that exists, the licences `Cargo.toml` names are
//! there, and `deploy/`'s config and systemd unit agree (item 5).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Text files under `dir` with one of `exts`, skipping build output.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files(&path, exts, out);
            }
        } else if exts.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
}

/// The section numbers cited as `<doc> §n` (also `<doc> §10, §11`).
fn citations(text: &str, doc: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices(&format!("{doc} §")) {
        let rest = &text[at + doc.len() + 1..];
        let end = rest.find([')', '.', ':', ';', '\n']).unwrap_or(rest.len());
        for part in rest[..end].split('§').skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                found.push(n);
            }
        }
    }
    found
}

#[test]
fn every_cited_design_section_is_in_docs() {
    let root = root();
    let mut sources = Vec::new();
    for dir in [
        "host",
        "plugin-api",
        "plugins",
        "tests",
        "xtask",
        "bench",
        "docs",
    ] {
        files(
            &root.join(dir),
            &[".rs", ".md", ".toml", ".py"],
            &mut sources,
        );
    }
    sources.extend(["README.md", "Cargo.toml", "config.toml"].map(|f| root.join(f)));
    let mut cited = 0;
    for (doc, file) in [
        ("DESIGN", "docs/DESIGN.md"),
        ("ABI_NOTES", "docs/ABI_NOTES.md"),
    ] {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{file} is cited but cannot be read: {e}"));
        for source in &sources {
            let code = std::fs::read_to_string(source).unwrap_or_default();
            for n in citations(&code, doc) {
                cited += 1;
                assert!(
                    text.contains(&format!("\n## {n}. ")),
                    "{} cites {doc} §{n}, which {file} does not have",
                    source.display()
                );
            }
        }
    }
    assert!(cited > 10, "the citation scan found only {cited}");
}

#[test]
fn relative_links_in_the_docs_lead_to_files() {
    let root = root();
    let mut docs = vec![root.join("README.md")];
    files(&root.join("docs"), &[".md"], &mut docs);
    files(&root.join("examples"), &[".md"], &mut docs);
    files(&root.join("deploy"), &[".md"], &mut docs);
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let target = &rest[..rest.find(')').unwrap_or(rest.len())];
            let path = target.split('#').next().unwrap_or_default();
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            let resolved = doc.parent().unwrap().join(path);
            assert!(
                resolved.exists(),
                "{} links to {target}, which does not exist",
                doc.display()
            );
        }
    }
}

#[test]
fn the_licences_cargo_toml_names_are_there() {
    let root = root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
    let mit = std::fs::read_to_string(root.join("LICENSE-MIT")).expect("LICENSE-MIT");
    assert!(mit.contains("Permission is hereby granted"));
    let apache = std::fs::read_to_string(root.join("LICENSE-APACHE")).expect("LICENSE-APACHE");
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0"));
}

#[test]
fn citations_are_read_with_their_lists() {
    assert_eq!(citations("x (DESIGN §10, §11; y)", "DESIGN"), [10, 11]);
    assert_eq!(citations("DESIGN §3: the", "DESIGN"), [3]);
    assert_eq!(citations("ABI_NOTES §4)", "DESIGN"), Vec::<u32>::new());
}

/// `deploy/`: the production config parses, and the systemd unit runs the
/// host on it with the limits the README recommends and write access to
/// its state folder only.
#[test]
fn the_deploy_config_and_unit_agree() {
    let root = root();
    let text = std::fs::read_to_string(root.join("deploy/config.toml")).unwrap();
    let config = modhost::config::parse(&text, Path::new("/etc/modhost/config.toml"))
        .unwrap_or_else(|e| panic!("deploy/config.toml: {e}"));
    let unit = std::fs::read_to_string(root.join("deploy/modhost.service")).unwrap();
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("modhost.service sets no {key}"))
            .to_owned()
    };
    assert_eq!(
        setting("ExecStart"),
        "/usr/local/bin/modhost run --config /etc/modhost/config.toml"
    );
    assert_eq!(
        Path::new(&setting("ReadWritePaths")),
        config.modules.state_dir
    );
    for key in ["LimitNOFILE", "MemoryMax", "LimitAS", "User"] {
        setting(key);
    }
    let layout = std::fs::read_to_string(root.join("deploy/README.md")).unwrap();
    for path in [
        &config.modules.dir,
        &config.modules.state_dir,
        &config.modules.verify_keys[0],
    ] {
        let shown = format!("`{}/`", path.display());
        assert!(
            layout.contains(&shown),
            "deploy/README.md does not place {shown}"
        );
    }
}
