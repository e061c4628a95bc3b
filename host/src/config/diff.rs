//! What changed between two configs, for live reload (DESIGN §4).
//!
//! The reload watcher applies a new config live and logs
//! [`describe_changes`]; for anything in [`restart_required`] it warns that
//! the running host keeps the old value until it is restarted.
//!
//! Secrets (tokens, the JWT secret) are never printed: a change is reported
//! as "changed" and, for lists, with the counts.

use std::fmt::Display;

use super::model::{Config, ModuleSettings};

/// Whether a setting differs between the old and the new config.
type Changed = fn(&Config, &Config) -> bool;

/// Settings the running host reads only at start-up, with why.
///
/// - `server.listen`: the socket is bound once (and later TLS, which wraps it);
/// - `modules.dir`: the file watcher is set up on that folder at start;
/// - `modules.state_dir`: rollback high-water marks are opened at start;
/// - `diagnostics.ws_echo_path`: the HTTP router is built at start.
///
/// Everything else (limits, tokens, module settings) applies live.
const RESTART_ONLY: &[(&str, Changed)] = &[
    ("server.listen", |a, b| a.server.listen != b.server.listen),
    ("modules.dir", |a, b| a.modules.dir != b.modules.dir),
    ("modules.state_dir", |a, b| {
        a.modules.state_dir != b.modules.state_dir
    }),
    ("diagnostics.ws_echo_path", |a, b| {
        a.diagnostics.ws_echo_path != b.diagnostics.ws_echo_path
    }),
];

/// The changed settings that only take effect after a restart, by their
/// config.toml names (`"server.listen"`), in a fixed order.
pub fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    RESTART_ONLY
        .iter()
        .filter(|(_, changed)| changed(old, new))
        .map(|(name, _)| *name)
        .collect()
}

/// Every change from `old` to `new`, one line each in operator words, e.g.
/// `limits.send_queue 1024 → 2048`, `module echo disabled`,
/// `auth tokens changed (3 → 4)`. Secret values never appear. Empty when
/// nothing that matters changed (the `source` path is ignored).
pub fn describe_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let restart = restart_required(old, new);
    let mut value = |name: &str, a: &dyn Display, b: &dyn Display, changed: bool| {
        if changed {
            let note = if restart.contains(&name) {
                " (takes effect after a restart)"
            } else {
                ""
            };
            out.push(format!("{name} {a} → {b}{note}"));
        }
    };

    let (s, t) = (&old.server, &new.server);
    value("server.listen", &s.listen, &t.listen, s.listen != t.listen);
    value(
        "server.idle_timeout_secs",
        &s.idle_timeout.as_secs(),
        &t.idle_timeout.as_secs(),
        s.idle_timeout != t.idle_timeout,
    );
    value(
        "server.resume_grace_secs",
        &s.resume_grace.as_secs(),
        &t.resume_grace.as_secs(),
        s.resume_grace != t.resume_grace,
    );

    let (l, m) = (&old.limits, &new.limits);
    value(
        "limits.max_frame_bytes",
        &l.max_frame_bytes,
        &m.max_frame_bytes,
        l.max_frame_bytes != m.max_frame_bytes,
    );
    value(
        "limits.max_json_depth",
        &l.max_json_depth,
        &m.max_json_depth,
        l.max_json_depth != m.max_json_depth,
    );
    value(
        "limits.max_subscriptions",
        &l.max_subscriptions,
        &m.max_subscriptions,
        l.max_subscriptions != m.max_subscriptions,
    );
    value(
        "limits.send_queue",
        &l.send_queue,
        &m.send_queue,
        l.send_queue != m.send_queue,
    );
    value(
        "limits.max_connections",
        &l.max_connections,
        &m.max_connections,
        l.max_connections != m.max_connections,
    );
    value(
        "limits.calls_per_second",
        &l.calls_per_second,
        &m.calls_per_second,
        l.calls_per_second != m.calls_per_second,
    );
    value(
        "limits.max_calls_in_flight",
        &l.max_calls_in_flight,
        &m.max_calls_in_flight,
        l.max_calls_in_flight != m.max_calls_in_flight,
    );
    value(
        "limits.call_timeout_ms",
        &l.call_timeout.as_millis(),
        &m.call_timeout.as_millis(),
        l.call_timeout != m.call_timeout,
    );
    value(
        "limits.max_params_bytes",
        &l.max_params_bytes,
        &m.max_params_bytes,
        l.max_params_bytes != m.max_params_bytes,
    );
    value(
        "limits.module_queue",
        &l.module_queue,
        &m.module_queue,
        l.module_queue != m.module_queue,
    );
    value(
        "limits.resume_buffer",
        &l.resume_buffer,
        &m.resume_buffer,
        l.resume_buffer != m.resume_buffer,
    );

    let (a, b) = (&old.modules, &new.modules);
    value(
        "modules.dir",
        &a.dir.display(),
        &b.dir.display(),
        a.dir != b.dir,
    );
    value(
        "modules.state_dir",
        &a.state_dir.display(),
        &b.state_dir.display(),
        a.state_dir != b.state_dir,
    );
    value(
        "modules.allow_rollback",
        &a.allow_rollback,
        &b.allow_rollback,
        a.allow_rollback != b.allow_rollback,
    );
    if a.verify_keys != b.verify_keys {
        let show = |v: &[std::path::PathBuf]| {
            let items: Vec<String> = v.iter().map(|p| p.display().to_string()).collect();
            format!("[{}]", items.join(", "))
        };
        value(
            "modules.verify_keys",
            &show(&a.verify_keys),
            &show(&b.verify_keys),
            true,
        );
    }

    let (d, e) = (&old.diagnostics.ws_echo_path, &new.diagnostics.ws_echo_path);
    value("diagnostics.ws_echo_path", &or_off(d), &or_off(e), d != e);

    // Secrets from here on: say what changed, never the values.
    match (&old.admin.token, &new.admin.token) {
        (None, Some(_)) => out.push("admin API enabled (admin.token set)".to_owned()),
        (Some(_), None) => out.push("admin API disabled (admin.token removed)".to_owned()),
        (Some(x), Some(y)) if x != y => out.push("admin.token changed".to_owned()),
        _ => {}
    }
    let (p, q) = (&old.auth, &new.auth);
    if p.tokens != q.tokens {
        out.push(format!(
            "auth tokens changed ({} → {})",
            p.tokens.len(),
            q.tokens.len()
        ));
    }
    match (&p.jwt, &q.jwt) {
        (None, Some(_)) => out.push("auth.jwt added".to_owned()),
        (Some(_), None) => out.push("auth.jwt removed".to_owned()),
        (Some(x), Some(y)) if x != y => out.push("auth.jwt changed".to_owned()),
        _ => {}
    }
    // A bootstrap URL can carry credentials in its query: not printed either.
    match (&p.bootstrap, &q.bootstrap) {
        (None, Some(_)) => out.push("auth.bootstrap added".to_owned()),
        (Some(_), None) => out.push("auth.bootstrap removed".to_owned()),
        (Some(x), Some(y)) if x != y => out.push("auth.bootstrap changed".to_owned()),
        _ => {}
    }
    let (u, v) = (&old.trigger.tokens, &new.trigger.tokens);
    if u != v {
        out.push(format!(
            "trigger tokens changed ({} → {})",
            u.len(),
            v.len()
        ));
    }

    // Modules: the union of names, in name order.
    let mut names: Vec<&String> = a.settings.keys().chain(b.settings.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let x = a.settings_for(name);
        let y = b.settings_for(name);
        describe_module(name, &x, &y, &mut out);
    }
    out
}

fn or_off(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(off)".to_owned())
}

/// A module without a table has the default settings, so adding an empty
/// `[modules.x]` is no change, and removing a table reports what reverted.
fn describe_module(name: &str, old: &ModuleSettings, new: &ModuleSettings, out: &mut Vec<String>) {
    if old.enabled != new.enabled {
        out.push(format!(
            "module {name} {}",
            if new.enabled { "enabled" } else { "disabled" }
        ));
    }
    if old.call_timeout != new.call_timeout {
        let show = |t: Option<std::time::Duration>| {
            t.map_or_else(|| "default".to_owned(), |d| d.as_millis().to_string())
        };
        out.push(format!(
            "module {name} call_timeout_ms {} → {}",
            show(old.call_timeout),
            show(new.call_timeout)
        ));
    }
    if old.publishes_per_second != new.publishes_per_second {
        let show = |n: Option<u32>| n.map_or_else(|| "default".to_owned(), |n| n.to_string());
        out.push(format!(
            "module {name} publishes_per_second {} → {}",
            show(old.publishes_per_second),
            show(new.publishes_per_second)
        ));
    }
    if old.config != new.config {
        out.push(format!("module {name} config changed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StaticToken, embedded_default};
    use std::path::Path;

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
}
