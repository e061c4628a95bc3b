//! `modhost package [--config FILE] [--key FILE] [--seq N]`, run in a
//! module's crate: builds it in release, checks the build as the host will,
//! signs it and drops `<module>.so` and its `.sig` into the config's
//! modules folder.
//!
//! The checks before signing are the host's own: [`modules::inspect`] loads
//! the build through the same code the loader runs, so a layout the host
//! refuses, `panic = "abort"` or a broken manifest stop here, before
//! anything reaches a host. The pair is published by
//! [`tools::publish`]: each file renamed into place whole.

use std::{
    io::BufRead,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};
use modhost::{
    modules,
    signing::{SeqStore, tools},
};
use modhost_plugin_api::abi::ABI;
use serde_json::Value;

use super::{config_file, load_config, signing::warn_unless_trusted};

/// `modhost package`.
pub(crate) fn package(
    config_path: Option<PathBuf>,
    key: Option<PathBuf>,
    seq: Option<u64>,
) -> anyhow::Result<()> {
    let Some(config_path) = config_file(config_path) else {
        bail!(
            "no config.toml here: pass --config with the config.toml of the host that should load the module (its [modules] dir receives the build)"
        );
    };
    let config = load_config(Some(config_path.clone()))?;
    // Canonical, as cargo names it in its messages.
    let manifest_path = std::env::current_dir()
        .and_then(|d| d.canonicalize())
        .context("cannot read the current folder")?
        .join("Cargo.toml");
    let cargo_toml = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "cannot read {}: run modhost package in the module's crate",
            manifest_path.display()
        )
    })?;
    if let Some(found) = panic_abort(
        &cargo_toml,
        std::env::var("CARGO_PROFILE_RELEASE_PANIC").ok(),
    ) {
        bail!(
            "{found} sets panic = \"abort\": a panicking handler would take the host down, so the host refuses such builds; remove it (panic = \"unwind\" is the default)"
        );
    }
    let lib = build_release(&manifest_path)?;
    let (manifest, abi) = modules::inspect(&lib)
        .with_context(|| format!("the host would refuse {}", lib.display()))?;
    if abi != ABI {
        bail!(
            "{} was built for ABI `{abi}` but this modhost speaks `{ABI}`: point modhost-plugin-api at this modhost's version and package again",
            lib.display()
        );
    }
    let (name, version) = (manifest.name.to_string(), manifest.version.to_string());
    let key = key.unwrap_or_else(|| PathBuf::from(format!("{name}.key")));
    if !key.exists() {
        bail!(
            "no signing key {}: make the module's key once with `modhost keygen {name} --config {}` (or pass --key FILE)",
            key.display(),
            config_path.display()
        );
    }
    warn_unless_trusted(&key, &name, &config.modules.verify_keys);
    let seq = seq.unwrap_or_else(|| next_seq(&config.modules.state_dir, &name));
    let dir = &config.modules.dir;
    if !dir.is_dir() {
        eprintln!("creating the modules folder {}", dir.display());
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let published = tools::publish(&lib, &key, dir, &name, &version, seq, ABI)?;
    let mut listen = config.server.listen;
    if listen.ip().is_unspecified() {
        listen.set_ip([127, 0, 0, 1].into());
    }
    println!(
        "packaged {name} {version} seq {seq} (key {}):\n  {}\n  {}\n\
         a running host on {} loads it within a second and swaps it in for the build it runs; check with\n  \
         curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" http://{listen}/api/modules\n\
         or `modhost verify --config {} {}` for what the host would say",
        published.envelope.key_id,
        published.lib.display(),
        published.sig.display(),
        config_path.display(),
        config_path.display(),
        published.lib.display(),
    );
    Ok(())
}

/// Where `panic = "abort"` is set for release builds, if it is: in the
/// crate's `[profile.release]` or cargo's environment override.
fn panic_abort(cargo_toml: &str, env: Option<String>) -> Option<String> {
    if env.as_deref() == Some("abort") {
        return Some("CARGO_PROFILE_RELEASE_PANIC".to_owned());
    }
    let manifest: toml::Table = cargo_toml.parse().ok()?;
    let panic = manifest
        .get("profile")?
        .get("release")?
        .get("panic")?
        .as_str()?;
    (panic == "abort").then(|| "Cargo.toml's [profile.release]".to_owned())
}

/// `cargo build --release --lib` of the crate at `manifest_path`; returns
/// the cdylib it built. Cargo's diagnostics go to the terminal as usual.
fn build_release(manifest_path: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building {} in release", manifest_path.display());
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--lib",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(manifest_path)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo: is it installed and on PATH?")?;
    let stdout = child.stdout.take().context("cargo's output")?;
    let lines: Vec<String> = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().context("cannot wait for cargo")?;
    if !status.success() {
        bail!("cargo build --release failed ({status}): see its errors above");
    }
    cdylib(&lines, manifest_path).with_context(|| {
        format!(
            "cargo built no cdylib for {}: its [lib] needs crate-type = [\"cdylib\", \"rlib\"]",
            manifest_path.display()
        )
    })
}

/// The `.so` of the crate at `manifest_path` among cargo's JSON messages.
fn cdylib(messages: &[String], manifest_path: &Path) -> Option<PathBuf> {
    messages
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest_path))
        .filter(|m| {
            m["target"]["crate_types"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
        })
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|x| x == "so"))
}

/// The seq for a build: the Unix time, or one above the highest the host
/// accepted when that is higher (a clock set back, or two builds in one
/// second), so the rollback guard never refuses a fresh package.
fn next_seq(state_dir: &Path, module: &str) -> u64 {
    let now = tools::default_seq();
    if !state_dir.join("seq").is_dir() {
        return now;
    }
    // The host's state may not be readable by the author: then the time
    // alone will do.
    let highest = SeqStore::open(state_dir)
        .ok()
        .and_then(|store| store.highest(module));
    match highest {
        Some(highest) if highest >= now => highest + 1,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_abort_found_in_the_profile_or_the_environment() {
        let abort = "[package]\nname = \"m\"\n[profile.release]\npanic = \"abort\"\n";
        assert!(
            panic_abort(abort, None)
                .unwrap()
                .contains("[profile.release]")
        );
        let unwind = "[profile.release]\npanic = \"unwind\"\n";
        assert_eq!(panic_abort(unwind, None), None);
        assert_eq!(panic_abort("[package]\nname = \"m\"\n", None), None);
        assert_eq!(
            panic_abort(unwind, Some("abort".into())).as_deref(),
            Some("CARGO_PROFILE_RELEASE_PANIC")
        );
    }

    #[test]
    fn cdylib_is_the_crates_own_so() {
        let manifest = Path::new("/m/Cargo.toml");
        let messages = [
            r#"{"reason":"compiler-artifact","manifest_path":"/dep/Cargo.toml","target":{"crate_types":["cdylib"]},"filenames":["/t/libdep.so"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/m/Cargo.toml","target":{"crate_types":["cdylib","rlib"]},"filenames":["/t/libm.rlib","/t/libm.so"]}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .map(String::from);
        assert_eq!(
            cdylib(&messages, manifest),
            Some(PathBuf::from("/t/libm.so"))
        );
        assert_eq!(cdylib(&messages[2..], manifest), None);
    }

    #[test]
    fn next_seq_goes_above_the_hosts_mark() {
        let dir = tempfile::tempdir().unwrap();
        let now = tools::default_seq();
        assert!(next_seq(dir.path(), "m") >= now);
        let store = SeqStore::open(dir.path()).unwrap();
        store.accept("m", now + 100, &[1; 64]).unwrap();
        assert_eq!(next_seq(dir.path(), "m"), now + 101);
    }
}
