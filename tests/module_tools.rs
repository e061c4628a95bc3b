//! The module tools against a real host (issue 16 items 3 and 4): `verify`
//! says what the host says, `keygen` and `sign` use the config's key
//! folders, and every file of the modules folder the host does not run
//! from is listed with its reason, in one row per module.

use std::{path::Path, time::Duration};

use serde_json::Value;

use crate::{
    harness::{TestHost, VERSION, WAIT, Workspace},
    modules::{cli, install_bad_builds},
};

/// Polls the host's refused files until one whose file ends with `file`
/// has an error containing `needle`; returns that error.
async fn wait_refused(host: &TestHost, file: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let refused = host.refusals().await;
        if let Some(error) = refused
            .iter()
            .filter(|r| r["file"].as_str().is_some_and(|f| f.ends_with(file)))
            .filter_map(|r| r["error"].as_str())
            .find(|e| e.contains(needle))
        {
            return error.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{file}: no refusal mentioning {needle:?}: {refused:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `modhost verify --config <ws>/config.toml <file>`.
fn verify(ws: &Workspace, file: &str) -> (Option<i32>, String) {
    let config = ws.path().join("config.toml");
    let lib = Path::new(file);
    cli(
        ws.path(),
        &[
            "verify",
            "--config",
            config.to_str().unwrap(),
            lib.to_str().unwrap(),
        ],
    )
}

#[tokio::test]
async fn verify_predicts_each_refusal_of_the_host() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 10);
    install_bad_builds(&mut ws);
    ws.install("stamp", "stamp.so", "stamp", VERSION, 1);
    let extra = "[modules.stamp]\nenabled = false";
    ws.write_config(extra);
    let host = TestHost::start(&ws, extra).await;
    // Below the mark echo's seq 10 set: a rollback.
    ws.publish(
        "echo-old.so",
        &Workspace::build_bytes("echo", 64),
        "echo",
        9,
    );
    wait_refused(&host, "echo-old.so", "seq").await;

    let refused = host.refusals().await;
    assert_eq!(refused.len(), 9, "{refused:#?}");
    for row in &refused {
        let (file, error) = (
            row["file"].as_str().unwrap(),
            row["error"].as_str().unwrap(),
        );
        let (code, out) = verify(&ws, file);
        assert_eq!(
            code,
            Some(1),
            "verify accepts {file}, the host said {error}: {out}"
        );
        assert!(
            out.contains(error),
            "verify disagrees with the host on {file}:\nhost:   {error}\nverify: {out}"
        );
    }
    let (code, out) = verify(&ws, ws.plugins().join("echo.so").to_str().unwrap());
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("module echo version") && out.contains("seq 10"),
        "{out}"
    );
    host.stop().await;
}

#[test]
fn keygen_and_sign_use_the_configs_key_folders() {
    let ws = Workspace::new();
    ws.write_config("");
    let config = ws.path().join("config.toml");
    let config = config.to_str().unwrap();
    let module_dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| cli(module_dir.path(), args);

    // --config: the public key goes where the host reads keys.
    let (code, out) = run(&["keygen", "greeter", "--config", config]);
    assert_eq!(code, Some(0), "{out}");
    assert!(ws.path().join("verify/greeter.pub").is_file(), "{out}");
    assert!(module_dir.path().join("greeter.key").is_file(), "{out}");
    assert!(!module_dir.path().join("verify_keys").exists(), "{out}");
    // No --config: ./config.toml, when there is one.
    let (code, out) = cli(ws.path(), &["keygen", "other", "--out", "keys"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(ws.path().join("verify/other.pub").is_file(), "{out}");

    std::fs::copy(
        crate::harness::built_lib("echo"),
        module_dir.path().join("echo.so"),
    )
    .unwrap();
    let sign = |module: &str| {
        run(&[
            "sign",
            "echo.so",
            "--key",
            "greeter.key",
            "--module",
            module,
            "--version",
            "1",
            "--config",
            config,
        ])
    };
    let (code, out) = sign("echo");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("warning") && out.contains("not one of module \"echo\"'s keys"),
        "{out}"
    );
    let (code, out) = sign("greeter");
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");
}

#[tokio::test]
async fn every_file_not_loaded_is_listed_once_per_module_with_its_reason() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let host = TestHost::start(&ws, "").await;

    // Dropped live without a .sig: listed once it has settled.
    std::fs::copy(
        crate::harness::built_lib("divide"),
        ws.plugins().join("stray.so"),
    )
    .unwrap();
    // Another build copied over echo.so, beside echo's old .sig.
    crate::harness::write_atomic(
        &ws.plugins().join("echo.so"),
        &Workspace::build_bytes("echo", 4096),
    );
    wait_refused(&host, "stray.so", "no signature").await;
    let error = wait_refused(&host, "echo.so", "another build").await;
    assert!(
        error.contains("bytes") || error.contains("SHA-512"),
        "{error}"
    );

    let rows = host.modules().await;
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["echo", "stray"], "{rows:#?}");
    let echo = &rows[0];
    assert_eq!(
        (&echo["state"], &echo["seq"]),
        (&Value::from("running"), &Value::from(1))
    );
    assert_eq!(
        echo["refused_builds"].as_array().unwrap().len(),
        1,
        "{echo:#}"
    );
    let stray = &rows[1];
    assert_eq!(stray["state"], "refused", "{stray:#}");
    host.stop().await;
}
