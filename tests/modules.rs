//! Signed module loading: a good module answers; every bad build is refused
//! with its own reason while the good one keeps answering.

use serde_json::json;

use crate::harness::{
    TestHost, VERSION, Workspace, built_lib, cargo_build, plugins_built, sig_path, target_dir,
};

/// The admin row of a refused file, by file name.
async fn refusal(host: &TestHost, file: &str) -> String {
    let rows = host.modules().await;
    let row = rows
        .iter()
        .find(|m| m["state"] == "refused" && m["file"].as_str().is_some_and(|f| f.ends_with(file)))
        .unwrap_or_else(|| panic!("{file} is not listed as refused: {rows:#?}"));
    row["error"].as_str().expect("a reason").to_owned()
}

async fn echo_answers(host: &TestHost) {
    let (status, body) = host.call("echo", "echo", json!({"x": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"result": {"x": 1}}));
}

#[tokio::test]
async fn signed_module_loads_and_answers() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;
    let echo = host.module("echo").await.expect("echo listed");
    assert_eq!(echo["state"], "running");
    assert_eq!(echo["version"], VERSION);
    assert_eq!(echo["seq"], 1);
    assert_eq!(echo["generation"], 1);
    let (status, body) = host
        .call("divide", "divide", json!({"dividend": 7, "divisor": 2}))
        .await;
    assert_eq!((status, body), (200, json!({"result": {"quotient": 3.5}})));
    let (status, body) = host
        .call("divide", "divide", json!({"dividend": 7, "divisor": 0}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "module-error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("division by zero"),
        "{body}"
    );
    host.stop().await;
}

#[tokio::test]
async fn unknown_module_and_command_and_missing_param() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "").await;
    let (status, body) = host.call("nope", "x", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown-module"))
    );
    let (status, body) = host.call("echo", "nope", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown-command"))
    );
    let (status, body) = host.call("divide", "divide", json!({"dividend": 1})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing-param"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("divisor"),
        "{body}"
    );
    let resp = crate::harness::http()
        .get(host.url("/api/modules"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    host.stop().await;
}

/// Puts one bad build of each kind into `ws`'s plugins folder (unsigned,
/// tampered, truncated, wrong key, misnamed, other ABI, changed layout);
/// returns each file with a piece of the reason it is refused for.
pub fn install_bad_builds(ws: &mut Workspace) -> [(&'static str, &'static str); 7] {
    // No .sig at all.
    std::fs::copy(
        crate::harness::built_lib("divide"),
        ws.plugins().join("unsigned.so"),
    )
    .unwrap();

    // One flipped byte after signing.
    let flipped = ws.install("divide", "flipped.so", "divide", VERSION, 5);
    let mut bytes = std::fs::read(&flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();

    // Truncated after signing.
    let truncated = ws.install("notes", "truncated.so", "notes", VERSION, 5);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 4096]).unwrap();

    // Signed as `relay` but with another module's key.
    let echo_key = ws.key("echo");
    ws.key("relay");
    ws.install_with_key(
        "relay",
        "wrongkey.so",
        "relay",
        VERSION,
        5,
        &echo_key,
        modhost_plugin_api::abi::ABI,
    );

    // Envelope says `hostile` (valid key for it), library's manifest says `divide`.
    ws.install("divide", "misnamed.so", "hostile", VERSION, 5);

    // Envelope ABI differs from the host's.
    let key = ws.key("bad-start");
    ws.install_with_key(
        "bad_start",
        "oldabi.so",
        "bad-start",
        VERSION,
        5,
        &key,
        "modhost-plugin-api=0.0;abi_stable=0.11;x86_64-unknown-linux-gnu",
    );

    // Built against a changed interface (layout differs).
    ws.install("abi_drift", "drift.so", "abi-drift", VERSION, 5);

    [
        ("unsigned.so", "no signature"),
        ("flipped.so", "SHA-512"),
        ("truncated.so", "truncated"),
        ("wrongkey.so", "signature"),
        ("misnamed.so", "signed as hostile"),
        ("oldabi.so", "built for ABI"),
        (
            "drift.so",
            "module \"abi-drift\": incompatible ABI in type AbiInfo: the host has modhost-plugin-api 0.1.0, the module was built against modhost-plugin-api 0.1.0 with a different layout (incompatible type size",
        ),
    ]
}

#[tokio::test]
async fn each_bad_build_is_refused_with_its_own_reason() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    let reasons = install_bad_builds(&mut ws);
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;

    let mut seen = std::collections::HashSet::new();
    for (file, needle) in reasons {
        let reason = refusal(&host, file).await;
        assert!(
            reason.to_lowercase().contains(&needle.to_lowercase()),
            "{file}: {reason}"
        );
        assert!(
            seen.insert(reason.clone()),
            "{file} shares its reason with another case: {reason}"
        );
    }
    // Each refused module is absent from the router.
    for m in [
        "divide",
        "notes",
        "relay",
        "hostile",
        "bad-start",
        "abi-drift",
    ] {
        let (status, body) = host.call(m, "x", json!({})).await;
        assert_eq!(
            body["error"]["code"], "unknown-module",
            "{m}: {status} {body}"
        );
    }
    echo_answers(&host).await;
    host.stop().await;
}

/// The fixtures built with a test-only feature are files no plain build
/// writes: a `cargo build --workspace` in the shared target folder while
/// tests run (it builds them without the feature, under the same names)
/// must not change what `abi_drift` and `pre_inline` load.
#[test]
fn a_plain_build_leaves_the_feature_built_fixtures_alone() {
    let libs = ["abi_drift", "pre_inline"];
    let before: Vec<Vec<u8>> = libs
        .iter()
        .map(|lib| std::fs::read(built_lib(lib)).expect("built fixture"))
        .collect();
    cargo_build(
        &target_dir(),
        &[
            "-p",
            "modhost-fixture-abi-drift",
            "-p",
            "modhost-fixture-pre-inline",
        ],
    );
    for (lib, before) in libs.iter().zip(before) {
        let plain = plugins_built().join(format!("lib{lib}.so"));
        let plain = std::fs::read(&plain).expect("the plain build's library");
        assert!(plain != before, "{lib}: the feature changes the build");
        let after = std::fs::read(built_lib(lib)).expect("built fixture");
        assert!(after == before, "{lib}: a plain build rewrote the fixture");
    }
}

#[tokio::test]
async fn rollback_is_refused_also_after_a_restart() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 10);
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;
    host.stop().await;

    // A different build signed with the mark's own seq: the mark remembers
    // which build it was, also across the restart.
    ws.publish("echo.so", &Workspace::build_bytes("echo", 4096), "echo", 10);
    let host = TestHost::start(&ws, "").await;
    let reason = refusal(&host, "echo.so").await;
    assert!(
        reason.contains("different build") && reason.contains("seq 10"),
        "{reason}"
    );
    host.stop().await;
    // The build accepted at 10 comes back up.
    ws.install("echo", "echo.so", "echo", VERSION, 10);
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;
    host.stop().await;

    // An older build (lower seq) replaces the file while the host is down.
    ws.install("echo", "echo.so", "echo", VERSION, 9);
    let host = TestHost::start(&ws, "").await;
    let reason = refusal(&host, "echo.so").await;
    assert!(reason.contains("9") && reason.contains("10"), "{reason}");
    let (_, body) = host.call("echo", "echo", json!({})).await;
    assert_eq!(body["error"]["code"], "unknown-module");
    host.stop().await;

    // The operator may allow it explicitly.
    let host = TestHost::start(&ws, "allow_rollback = true").await;
    echo_answers(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn a_panic_in_a_handler_is_contained() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let host = TestHost::start(&ws, "").await;
    let (status, body) = host.call("divide", "boom", json!({})).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "module-panicked");
    let (status, body) = host
        .call("divide", "divide", json!({"dividend": 9, "divisor": 3}))
        .await;
    assert_eq!((status, body), (200, json!({"result": {"quotient": 3}})));
    let row = host.module("divide").await.unwrap();
    assert_eq!(row["restarts"], 1);
    echo_answers(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn a_failing_or_panicking_start_is_refused() {
    let mut ws = Workspace::new();
    ws.install("echo", "echo.so", "echo", VERSION, 1);
    ws.install("bad_start", "bad-start.so", "bad-start", VERSION, 1);
    let host = TestHost::start(&ws, "[modules.bad-start]\npanic = true").await;
    let reason = refusal(&host, "bad-start.so").await;
    assert!(reason.contains("panicked"), "{reason}");
    echo_answers(&host).await;
    host.stop().await;
}

/// Runs `modhost args…` in `dir`; its exit code and its output (stdout,
/// then stderr).
pub fn cli(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(crate::harness::modhost_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn cli_keygen_sign_verify() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| cli(dir.path(), args);
    let (code, out) = run(&["keygen", "echo", "--out", "keys", "--verify-keys", "vk"]);
    assert_eq!(code, Some(0), "{out}");
    let key = dir.path().join("keys/echo.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (code, out) = run(&["keygen", "echo", "--out", "keys", "--verify-keys", "vk"]);
    assert_eq!(code, Some(1), "keygen must refuse to overwrite: {out}");

    let lib = dir.path().join("echo.so");
    std::fs::copy(crate::harness::built_lib("echo"), &lib).unwrap();
    let (code, out) = run(&["sign", "echo.so", "--key", "keys/echo.key", "--seq", "42"]);
    assert_eq!(code, Some(0), "{out}");
    let sig = std::fs::read_to_string(sig_path(&lib)).unwrap();
    assert!(
        sig.contains("module = \"echo\"") && sig.contains("seq = 42"),
        "{sig}"
    );
    let (code, out) = run(&["verify", "echo.so", "--verify-keys", "vk"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("echo") && out.contains("42"), "{out}");

    let mut bytes = std::fs::read(&lib).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&lib, bytes).unwrap();
    let (code, out) = run(&["verify", "echo.so", "--verify-keys", "vk"]);
    assert_eq!(code, Some(1), "{out}");
}

/// `mkfifo path`: what a careless (or hostile) deploy could leave behind.
fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[tokio::test]
async fn fifos_in_the_modules_folder_are_refused_and_block_nothing() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    // A FIFO as the signature of a real library, and a FIFO as a library.
    std::fs::copy(
        crate::harness::built_lib("echo"),
        ws.plugins().join("piped-sig.so"),
    )
    .unwrap();
    mkfifo(&ws.plugins().join("piped-sig.so.sig"));
    mkfifo(&ws.plugins().join("piped-lib.so"));
    std::fs::copy(
        sig_path(&ws.plugins().join("echo.so")),
        ws.plugins().join("piped-lib.so.sig"),
    )
    .unwrap();
    // Start-up would never finish if either were opened blocking.
    let host = TestHost::start(&ws, "").await;
    echo_answers(&host).await;
    for file in ["piped-sig.so", "piped-lib.so"] {
        let reason = refusal(&host, file).await;
        assert!(
            reason.contains("not a regular file (a FIFO)"),
            "{file}: {reason}"
        );
    }
    // The watcher meets a new FIFO, then still loads a real build after it.
    mkfifo(&ws.plugins().join("later.so.sig"));
    std::fs::copy(
        crate::harness::built_lib("echo"),
        ws.plugins().join("later.so"),
    )
    .unwrap();
    ws.publish(
        "relay.so",
        &Workspace::build_bytes("relay", 0),
        "relay",
        1_000_000,
    );
    host.wait_module("relay", "replaced by seq 1000000", |m| {
        m["seq"] == 1_000_000
    })
    .await;
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    while !host.refusals().await.iter().any(|r| {
        r["file"].as_str().is_some_and(|f| f.ends_with("later.so"))
            && r["error"].as_str().is_some_and(|e| e.contains("a FIFO"))
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "later.so not refused: {:#?}",
            host.refusals().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    host.stop().await;
}

#[test]
fn cli_sign_with_module_and_version_never_loads_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("constructor-ran");
    // A library whose constructor leaves a mark: what a hostile build
    // would do with the signer's account.
    let source = dir.path().join("ctor.c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void ran(void) {{\n  FILE *f = fopen(\"{}\", \"w\");\n  if (f) fclose(f);\n}}\n",
            marker.display()
        ),
    )
    .unwrap();
    let lib = dir.path().join("ctor.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&source)
        .status()
        .expect("cc runs");
    assert!(built.success());
    let run = |args: &[&str]| cli(dir.path(), args);
    let (code, out) = run(&["keygen", "ctor", "--out", "keys", "--verify-keys", "vk"]);
    assert_eq!(code, Some(0), "{out}");

    let (code, out) = run(&[
        "sign",
        "ctor.so",
        "--key",
        "keys/ctor.key",
        "--module",
        "ctor",
        "--version",
        "1.0.0",
        "--seq",
        "3",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!marker.exists(), "signing loaded the library: {out}");
    assert!(sig_path(&lib).exists());

    // Without them it says it loads the library, and it does.
    let (code, out) = run(&["sign", "ctor.so", "--key", "keys/ctor.key", "--seq", "4"]);
    assert_eq!(code, Some(1), "not a module, so no manifest: {out}");
    assert!(
        out.contains("loads the library") && out.contains("--module and --version"),
        "{out}"
    );
    assert!(
        marker.exists(),
        "the manifest was read without loading: {out}"
    );
}
