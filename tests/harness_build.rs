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

/// The fixtures built with a test-only feature of `modhost-plugin-api`:
/// (library, package, feature). They are built into their own target
/// folder ([`feature_target_dir`]): a plain `cargo build --workspace` in the
/// shared one builds the same packages without the feature under the same
/// file names, and would swap the build a test loads while it runs.
const FEATURE_FIXTURES: [(&str, &str, &str); 2] = [
    // Built against a changed interface: the host must refuse it.
    (
        "abi_drift",
        "modhost-fixture-abi-drift",
        "modhost-plugin-api/__test-abi-drift",
    ),
    // Built without the inline entry point's symbol: it must still load.
    (
        "pre_inline",
        "modhost-fixture-pre-inline",
        "modhost-plugin-api/__test-pre-inline",
    ),
];

/// The target folder only the [`FEATURE_FIXTURES`] builds write to.
fn feature_target_dir() -> PathBuf {
    target_dir().join("fixtures-features")
}

/// Runs `cargo build --quiet args` on the workspace into `target_dir`.
pub fn cargo_build(target_dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let status = Command::new(cargo)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir)
        .arg("build")
        .arg("--quiet")
        .args(args)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// Builds the plugin libraries the tests load (once per test process) and
/// returns the folder that holds them (but the [`FEATURE_FIXTURES`], see
/// [`built_lib`]).
pub fn plugins_built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_build(
            &target_dir(),
            &[
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
            ],
        );
        // One build each: features unify within a build, and each fixture
        // must have its own feature only.
        for (_, package, feature) in FEATURE_FIXTURES {
            cargo_build(
                &feature_target_dir(),
                &["-p", package, "--features", feature],
            );
        }
        profile_dir()
    })
}

/// The `modhost` binary, built on first use.
pub fn modhost_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cargo_build(&target_dir(), &["-p", "modhost", "--bin", "modhost"]);
            plugins_built();
            profile_dir().join("modhost")
        })
        .clone()
}

/// The built library of `lib` (e.g. `echo` → `libecho.so`).
pub fn built_lib(lib: &str) -> PathBuf {
    let file = format!("lib{lib}.so");
    let shared = plugins_built();
    if FEATURE_FIXTURES.iter().any(|(name, ..)| *name == lib) {
        // The same profile as the shared folder's, in the fixtures' own.
        let profile = shared.file_name().expect("a profile folder");
        return feature_target_dir().join(profile).join(file);
    }
    shared.join(file)
}
