//! Files an attacker on the same machine could plant or change: config.toml
//! and verify-key folders that others can write to.

use std::os::unix::fs::PermissionsExt as _;

use crate::harness::{ProcessHost, TestHost, Workspace};

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
