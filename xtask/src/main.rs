//! Build automation: `cargo xtask run` starts the host with the bundled
//! modules built and signed by a dev key generated on first use;
//! `cargo xtask layers` checks the host's source files for import circles.
//!
//! # Layout
//! - `main`: the subcommands
//! - `quickstart`: build → dev keys → copy + sign into plugins/ → run
//! - `layers`: the file graph of `host/src` and `plugin-api/src`, and its circles

mod layers;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

/// The modules bundled in `plugins/` that the quickstart loads.
const BUNDLED: [&str; 4] = ["echo", "notes", "divide", "relay"];
/// Where the quickstart keeps its dev keys (git-ignored).
const DEV_KEYS: &str = ".modhost/dev-keys";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => quickstart(&args[1..]),
        Some("plugins") => build_and_sign().map(|_| ()),
        Some("layers") => layers::main(&root(), &args[1..]),
        _ => Err(
            "usage: cargo xtask run [-- modhost run args] | cargo xtask plugins | cargo xtask layers [--dot]"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn status(cmd: &mut Command, what: &str) -> Result<(), String> {
    let ok = cmd.status().map_err(|e| format!("{what}: {e}"))?.success();
    if ok {
        Ok(())
    } else {
        Err(format!("{what} failed"))
    }
}

/// Builds the host and the bundled modules, makes dev keys if missing,
/// and copies + signs each module into `plugins/`. Returns the host binary.
fn build_and_sign() -> Result<PathBuf, String> {
    let root = root();
    let mut build = cargo();
    build.args(["build", "-p", "modhost"]);
    for m in BUNDLED {
        build.args(["-p", &format!("modhost-{m}")]);
    }
    status(&mut build, "cargo build")?;
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let modhost = target.join("debug/modhost");
    let keys = root.join(DEV_KEYS);
    let verify = keys.join("verify");
    for m in BUNDLED {
        let key = keys.join(format!("{m}.key"));
        if !key.exists() {
            status(
                Command::new(&modhost)
                    .arg("keygen")
                    .arg(m)
                    .arg("--out")
                    .arg(&keys)
                    .arg("--verify-keys")
                    .arg(&verify),
                "modhost keygen",
            )?;
        }
        let built = target.join(format!("debug/lib{m}.so"));
        let dest = root.join(format!("plugins/{m}.so"));
        // Copy beside, then rename: a running host never sees a partial file.
        let tmp = root.join(format!("plugins/.{m}.so.tmp"));
        std::fs::copy(&built, &tmp).map_err(|e| format!("copy {}: {e}", built.display()))?;
        std::fs::rename(&tmp, &dest).map_err(|e| format!("rename into {}: {e}", dest.display()))?;
        status(
            Command::new(&modhost)
                .arg("sign")
                .arg(&dest)
                .arg("--key")
                .arg(&key),
            "modhost sign",
        )?;
    }
    Ok(modhost)
}

fn quickstart(extra: &[String]) -> Result<(), String> {
    let modhost = build_and_sign()?;
    let mut run = Command::new(modhost);
    run.current_dir(root()).arg("run");
    if extra.is_empty() {
        run.args(["--config", "config.toml"]);
    } else {
        run.args(extra);
    }
    status(&mut run, "modhost run")
}
