//! Test harness, builds: the plugin libraries and the `modhost` binary,
//! built once per test process into the target folder the tests run from.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The cargo target profile folder this test binary was built into.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    // target/debug/deps/integration-xxxx
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_owned()
}

/// The cargo target folder this test binary was built into: builds the
/// tests start share it, so they reuse what is already compiled.
pub fn target_dir() -> PathBuf {
    profile_dir().parent().expect("target dir").to_owned()
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = target_dir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let status = Command::new(cargo)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .arg("build")
        .arg("--quiet")
        .args(args)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// Builds the plugin libraries the tests load (once per test process) and
/// returns the folder that holds them.
pub fn plugins_built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_build(&[
            "-p",
            "modhost-echo",
            "-p",
            "modhost-notes",
            "-p",
            "modhost-divide",
            "-p",
            "modhost-relay",
            "-p",
            "modhost-fixture-bad-start",
            "-p",
            "modhost-fixture-hostile",
            "-p",
            "modhost-fixture-stamp",
        ]);
        // Built against a changed interface: the host must refuse it.
        cargo_build(&[
            "-p",
            "modhost-fixture-abi-drift",
            "--features",
            "modhost-plugin-api/__test-abi-drift",
        ]);
        // Built without the inline entry point's symbol: it must still load.
        cargo_build(&[
            "-p",
            "modhost-fixture-pre-inline",
            "--features",
            "modhost-plugin-api/__test-pre-inline",
        ]);
        profile_dir()
    })
}

/// The `modhost` binary, built on first use.
pub fn modhost_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cargo_build(&["-p", "modhost", "--bin", "modhost"]);
            plugins_built();
            profile_dir().join("modhost")
        })
        .clone()
}

/// The built library of `lib` (e.g. `echo` → `libecho.so`).
pub fn built_lib(lib: &str) -> PathBuf {
    plugins_built().join(format!("lib{lib}.so"))
}
