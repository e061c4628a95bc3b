//! The live-diff lines and the restart list.

use std::path::Path;

use crate::config::{Config, StaticToken, describe_changes, embedded_default, restart_required};

fn base() -> Config {
    embedded_default(Path::new("/srv/modhost"))
}

#[test]
fn identical_configs_have_no_changes() {
    assert!(describe_changes(&base(), &base()).is_empty());
    assert!(restart_required(&base(), &base()).is_empty());
}

#[test]
fn listen_needs_a_restart_limits_do_not() {
    let old = base();
    let mut new = base();
    new.server.listen = "127.0.0.1:9090".parse().unwrap();
    new.limits.send_queue = 2048;
    assert_eq!(restart_required(&old, &new), vec!["server.listen"]);
    let changes = describe_changes(&old, &new);
    assert!(
        changes.contains(
            &"server.listen 127.0.0.1:8080 → 127.0.0.1:9090 (takes effect after a restart)"
                .to_owned()
        ),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"limits.send_queue 1024 → 2048".to_owned()),
        "{changes:?}"
    );
}

#[test]
fn secrets_are_counted_not_printed() {
    let old = base();
    let mut new = base();
    new.auth.tokens.push(StaticToken {
        token: "bob-very-secret".into(),
        user: "bob".into(),
        roles: vec!["user".into()],
        allowed_rooms: vec![],
    });
    new.admin.token = Some("new-admin-secret".into());
    new.trigger.tokens = vec!["other-trigger-secret".into()];
    let changes = describe_changes(&old, &new);
    assert!(
        changes.contains(&"auth tokens changed (2 → 3)".to_owned()),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"admin.token changed".to_owned()),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"trigger tokens changed (1 → 1)".to_owned()),
        "{changes:?}"
    );
    let all = changes.join("\n");
    for secret in [
        "bob-very-secret",
        "new-admin-secret",
        "other-trigger-secret",
        "trigger-secret",
        "change-me",
    ] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
}

#[test]
fn module_changes_in_operator_words() {
    let old = base();
    let mut new = base();
    let notes = new.modules.settings.get_mut("notes").unwrap();
    notes.config = serde_json::json!({"max_notes_per_user": 5});
    notes.call_timeout = Some(std::time::Duration::from_millis(2000));
    let mut echo = new.modules.settings_for("echo");
    echo.enabled = false;
    new.modules.settings.insert("echo".into(), echo);
    let changes = describe_changes(&old, &new);
    assert_eq!(
        changes,
        vec![
            "module echo disabled".to_owned(),
            "module notes call_timeout_ms default → 2000".to_owned(),
            "module notes config changed".to_owned(),
        ]
    );
    // Removing the table reverts to the defaults.
    let back = describe_changes(&new, &old);
    assert!(back.contains(&"module echo enabled".to_owned()), "{back:?}");
}

#[test]
fn folders_and_echo_path_need_a_restart() {
    let old = base();
    let mut new = base();
    new.modules.dir = "/elsewhere".into();
    new.diagnostics.ws_echo_path = Some("/echo".into());
    new.modules.allow_rollback = true;
    assert_eq!(
        restart_required(&old, &new),
        vec!["modules.dir", "diagnostics.ws_echo_path"]
    );
    let changes = describe_changes(&old, &new);
    assert!(
        changes.contains(
            &"diagnostics.ws_echo_path (off) → /echo (takes effect after a restart)".to_owned()
        ),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"modules.allow_rollback false → true".to_owned()),
        "{changes:?}"
    );
}

#[test]
fn apps_added_changed_and_removed_apply_live() {
    let with = |tables: &str| {
        crate::config::parse(tables, Path::new("/srv/modhost/config.toml")).expect("parses")
    };
    let old = with("[apps.a]\ncommand = \"x\"\n[apps.b]\ncommand = \"y\"\n");
    let new = with("[apps.b]\ncommand = \"z\"\n[apps.c]\ncommand = \"x\"\n");
    assert_eq!(
        describe_changes(&old, &new),
        vec![
            "app a removed (its running jobs go on)",
            "app b changed (new launches)",
            "app c added",
        ]
    );
    assert!(restart_required(&old, &new).is_empty());
}
