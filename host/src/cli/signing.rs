//! `modhost keygen`, `sign` and `verify`: thin wrappers over
//! `modhost::signing::tools`, with their folders from the host's config.
//!
//! Each reads the config `modhost run` would (`--config`, else
//! ./config.toml, else the embedded defaults) for the folders the host
//! itself uses: keygen appends the public key to the first of `[modules]
//! verify_keys`, sign checks the key against them, and verify runs the
//! host's own checks ([`modules::check`]) against them, the module's
//! `enabled` and the rollback marks in `state_dir`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use modhost::{
    config::Config,
    modules,
    signing::{Keyring, SeqStore, tools},
};

use super::{config_file, load_config};

/// The folders of `<module>.pub` files: those given, else the config's.
fn verify_key_dirs(given: Vec<PathBuf>, config: &Config) -> Vec<PathBuf> {
    if given.is_empty() {
        config.modules.verify_keys.clone()
    } else {
        given
    }
}

/// Reads the config like `modhost run` and says on stderr which one, so a
/// key landing in the wrong folder is noticed at once.
pub(crate) fn read_config(config_path: Option<PathBuf>) -> anyhow::Result<Config> {
    match config_file(config_path.clone()) {
        Some(path) => eprintln!("using {}", path.display()),
        None => eprintln!(
            "no config.toml here and no --config: using the embedded defaults' folders (./verify_keys, ./plugins); pass --config with the host's config.toml to use its folders"
        ),
    }
    load_config(config_path)
}

/// `modhost keygen`.
pub(crate) fn keygen(
    module: &str,
    out: &Path,
    verify_keys: Option<PathBuf>,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let verify_keys = match verify_keys {
        Some(dir) => dir,
        None => read_config(config_path)?
            .modules
            .verify_keys
            .into_iter()
            .next()
            .context(
                "the config lists no [modules] verify_keys folder: add one, or pass --verify-keys DIR",
            )?,
    };
    let report = tools::keygen(module, out, &verify_keys)?;
    println!("{report}");
    Ok(())
}

/// `modhost sign`.
pub(crate) fn sign(
    lib: &Path,
    key: &Path,
    seq: Option<u64>,
    module: Option<String>,
    version: Option<String>,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (module, version, abi) = match (module, version) {
        // Both given: the library is never loaded, so signing an untrusted
        // build runs none of its code. The host checks its ABI at load time.
        (Some(m), Some(v)) => (m, v, modhost_plugin_api::abi::ABI.to_owned()),
        (module, version) => {
            eprintln!(
                "reading the manifest of {}: this loads the library and runs its constructors \
                 (pass --module and --version to sign without loading it)",
                lib.display()
            );
            let (manifest, abi) = modules::inspect(lib).with_context(|| {
                format!(
                    "cannot read the manifest of {} (pass --module and --version)",
                    lib.display()
                )
            })?;
            (
                module.unwrap_or_else(|| manifest.name.to_string()),
                version.unwrap_or_else(|| manifest.version.to_string()),
                abi,
            )
        }
    };
    if abi != modhost_plugin_api::abi::ABI {
        bail!(
            "{} was built for ABI `{abi}` but this modhost speaks `{}`: rebuild it against this modhost-plugin-api",
            lib.display(),
            modhost_plugin_api::abi::ABI
        );
    }
    // The config only serves the warning: a broken one must not stop a
    // signature, which is checked wherever the build is loaded.
    match read_config(config_path) {
        Ok(config) => warn_unless_trusted(key, &module, &config.modules.verify_keys),
        Err(e) => eprintln!("warning: cannot read the config to check the key against: {e:#}"),
    }
    let seq = seq.unwrap_or_else(tools::default_seq);
    let envelope = tools::sign_file(lib, key, &module, &version, seq, &abi)?;
    println!(
        "signed {} as {} {} seq {} (key {}) → {}.sig",
        lib.display(),
        envelope.module,
        envelope.version,
        envelope.seq,
        envelope.key_id,
        lib.display()
    );
    Ok(())
}

/// Warns on stderr when a host reading `dirs` would not trust `key` for
/// `module`: signing goes ahead (the key may be trusted elsewhere), but the
/// author learns now rather than from the host's refusal.
pub(crate) fn warn_unless_trusted(key: &Path, module: &str, dirs: &[PathBuf]) {
    let shown = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match tools::key_trusted(key, module, dirs) {
        Ok(true) => {}
        Ok(false) => eprintln!(
            "warning: {} is not one of module {module:?}'s keys in {shown}: a host reading those folders refuses this build (no verify key); make the module's key with `modhost keygen {module}`, or add this key's public half to {module}.pub there",
            key.display()
        ),
        Err(e) => eprintln!("warning: cannot tell whether {shown} trust this key: {e}"),
    }
}

/// `modhost verify`: what the host on this config would do with `lib`.
pub(crate) fn verify(
    lib: &Path,
    verify_keys: Vec<PathBuf>,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = read_config(config_path)?;
    let dirs = verify_key_dirs(verify_keys, &config);
    let keyring = Keyring::load(&dirs)?;
    for warning in keyring.warnings() {
        eprintln!("note: {warning}");
    }
    let state_dir = &config.modules.state_dir;
    // A host that never accepted a build has no marks yet; opening the
    // store would create its folder, which is the host's to make.
    let seqs = if state_dir.join("seq").is_dir() {
        Some(SeqStore::open(state_dir)?)
    } else {
        None
    };
    let loaded = modules::check(lib, &keyring, seqs.as_ref(), &config.modules)
        .map_err(|e| anyhow::anyhow!("the host would refuse {}: {e}", lib.display()))?;
    let envelope = &loaded.envelope;
    println!(
        "ok: module {} version {} seq {} key {}",
        envelope.module, envelope.version, envelope.seq, envelope.key_id
    );
    Ok(())
}
