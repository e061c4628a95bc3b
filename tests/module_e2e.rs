//! A module author's whole path on the real binary (issue 16): `modhost
//! new` → `cargo test` → `modhost keygen` → `modhost package` → the running
//! host answers the new command; then an edited build, packaged again,
//! answers without a restart. Prints both times for the README.
//!
//! The module's builds share the workspace's target folder, so abi_stable
//! and the other dependencies are compiled once, not on every run.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::harness::{Workspace, modhost_bin, target_dir};
use crate::harness_process::ProcessHost;

/// Runs `program args…` in `dir` with the shared target folder; panics with
/// its output unless it succeeds. Returns how long it took.
fn run(dir: &Path, program: &Path, args: &[&str]) -> Duration {
    let began = Instant::now();
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    began.elapsed()
}

/// Polls `greeter`'s `greet` until it answers `text`; returns how long that
/// took.
async fn wait_for_greeting(host: &ProcessHost, text: &str) -> Duration {
    let began = Instant::now();
    let mut last = (0, Value::Null);
    while began.elapsed() < Duration::from_secs(60) {
        last = host.call("greeter", "greet", json!({"name": "Ada"})).await;
        if last.0 == 200 && last.1["result"]["text"] == text {
            return began.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "greeter never answered {text:?}; last: {last:?}\n{}",
        host.log()
    );
}

#[tokio::test]
async fn a_new_module_answers_and_its_edit_replaces_it_live() {
    let ws = Workspace::new();
    let host = ProcessHost::start(&ws, "");
    let pid = host.pid();
    let config = ws.path().join("config.toml");
    let config = config.to_str().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let (modhost, cargo) = (modhost_bin(), Path::new(&cargo).to_owned());
    let author = ws.path().join("author");
    std::fs::create_dir(&author).unwrap();
    let module = author.join("greeter");

    let began = Instant::now();
    run(&author, &modhost, &["new", "greeter"]);
    let test = run(&module, &cargo, &["test", "--quiet"]);
    run(
        &module,
        &modhost,
        &["keygen", "greeter", "--config", config],
    );
    let package = run(&module, &modhost, &["package", "--config", config]);
    let load = wait_for_greeting(&host, "Hello, Ada!").await;
    let first = began.elapsed();
    assert!(
        std::fs::read_to_string(module.join(".gitignore"))
            .unwrap()
            .contains("*.key"),
        "the key must stay out of git"
    );

    let lib = module.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(source.contains("Hello, {name}!"), "{source}");
    std::fs::write(
        &lib,
        source.replace("Hello, {name}!", "Hi {name}, from the edit"),
    )
    .unwrap();
    let edited = Instant::now();
    let repackage = run(&module, &modhost, &["package", "--config", config]);
    let swap = wait_for_greeting(&host, "Hi Ada, from the edit").await;
    let update = edited.elapsed();

    assert_eq!(host.pid(), pid);
    let row = host
        .modules()
        .await
        .into_iter()
        .find(|m| m["name"] == "greeter")
        .expect("greeter listed");
    assert_eq!(
        (&row["state"], &row["generation"]),
        (&json!("running"), &json!(2)),
        "{row:#}"
    );
    println!(
        "module e2e: empty folder → first answer {:.1} s (cargo test {:.1} s, package {:.1} s, loaded and answering {} ms after); edit → new code answering {:.1} s (package {:.1} s, swapped in and answering {} ms after), no restart",
        first.as_secs_f64(),
        test.as_secs_f64(),
        package.as_secs_f64(),
        load.as_millis(),
        update.as_secs_f64(),
        repackage.as_secs_f64(),
        swap.as_millis()
    );
}
