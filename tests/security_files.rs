//! Files an attacker on the same machine could plant or change: config.toml
//! and verify-key folders that others can write to; API tokens rotated in
//! config.toml.

use std::os::unix::fs::PermissionsExt as _;

use crate::harness::{TRIGGER_TOKEN, TestHost, WAIT, Workspace, write_atomic};
use crate::harness_process::ProcessHost;

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_world_writable_config_is_named_in_the_log() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let config = ws.path().join("config.toml");
    // Writing over an existing file keeps its mode.
    std::fs::write(&config, "").unwrap();
    chmod(&config, 0o666);
    let host = ProcessHost::start(&ws, "");
    let log = host.log();
    assert!(
        log.contains("world-writable") && log.contains("chmod o-w"),
        "{log}"
    );
    drop(host);

    chmod(&config, 0o644);
    let host = ProcessHost::start(&ws, "");
    assert!(!host.log().contains("world-writable"), "{}", host.log());
}

#[tokio::test]
async fn keys_reached_through_a_folder_others_can_write_are_refused() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    // The trusted keys, moved into a folder anyone can write to, and
    // reached through a symlink from where the config expects them.
    let keys = ws.path().join("verify");
    let open = ws.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::rename(&keys, open.join("keys")).unwrap();
    std::os::unix::fs::symlink(open.join("keys"), &keys).unwrap();
    chmod(&open, 0o777);
    let mut host = ProcessHost::spawn(&ws, "");
    assert_eq!(
        host.wait_listening(std::time::Duration::from_secs(60)),
        None,
        "started on keys others can replace"
    );
    let log = host.log();
    assert!(
        log.contains(&format!("{} is group- or world-writable", open.display())),
        "{log}"
    );
    drop(host);

    chmod(&open, 0o755);
    let host = TestHost::start(&ws, "").await;
    let (status, body) = host.call("echo", "echo", serde_json::json!({"x": 1})).await;
    assert_eq!(status, 200, "{body}");
    host.stop().await;
}

#[tokio::test]
async fn api_tokens_changed_in_config_apply_at_once() {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let text = ws.write_config("");
    let host = TestHost::start_text(&ws, &text).await;
    let body = r#"{"rooms":[{"target":"message","customer":"1"}],"data":1}"#;
    assert_eq!(host.trigger(Some(TRIGGER_TOKEN), body).await.0, 200);
    // The tokens are kept as digests made when a config is applied: a
    // rotated token must replace them, not sit beside a stale copy.
    let rotated = text.replace(
        &format!("tokens = [\"{TRIGGER_TOKEN}\"]"),
        "tokens = [\"rotated-trigger-token\"]",
    );
    assert_ne!(rotated, text);
    write_atomic(&ws.path().join("config.toml"), rotated.as_bytes());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let old = host.trigger(Some(TRIGGER_TOKEN), body).await.0;
        let new = host.trigger(Some("rotated-trigger-token"), body).await.0;
        if (old, new) == (401, 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "old token {old}, new token {new}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    host.stop().await;
}
