//! What changed between two configs, for live reload (DESIGN §4).
//!
//! The reload watcher applies a new config live and logs
//! [`describe_changes`]; for anything in [`restart_required`] it warns that
//! the running host keeps the old value until it is restarted. Both come
//! from the declarations in `settings.rs` (each setting's codec words its
//! line, and says whether it needs a restart); only the secrets and the
//! per-module tables are worded here.
//!
//! Secrets (tokens, the JWT secret) are never printed: a change is reported
//! as "changed" and, for lists, with the counts.

use super::model::LogConfig;
use super::model::{
    AmqpConfig, Config, Diagnostics, ExternalConfig, GatewayConfig, Limits, ModuleSettings,
    ModulesConfig, ServerConfig,
};

/// The changed settings that only take effect after a restart, by their
/// config.toml names (`"server.listen"`), in a fixed order.
///
/// Which settings those are is declared with each setting (`Restart` in
/// `settings.rs`), with the reason in its docs: the socket is bound once,
/// the module folder is watched and the state folder opened at start, the
/// HTTP router is built at start. Everything else applies live.
pub fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    ServerConfig::restart_required(&old.server, &new.server, &mut out);
    GatewayConfig::restart_required(&old.gateway, &new.gateway, &mut out);
    Limits::restart_required(&old.limits, &new.limits, &mut out);
    ModulesConfig::restart_required(&old.modules, &new.modules, &mut out);
    Diagnostics::restart_required(&old.diagnostics, &new.diagnostics, &mut out);
    ExternalConfig::restart_required(&old.external, &new.external, &mut out);
    LogConfig::restart_required(&old.log, &new.log, &mut out);
    // The store, its token key and the /auth routes are opened at start.
    if old.auth.accounts != new.auth.accounts {
        out.push("auth.accounts");
    }
    // The history's rooms and bound are built into the engine at start.
    if old.history != new.history {
        out.push("history");
    }
    // The NATS connection is made at start.
    if old.cluster != new.cluster {
        out.push("cluster");
    }
    // The metrics listener is bound once, like server.listen.
    if old.metrics.listen != new.metrics.listen {
        out.push("metrics.listen");
    }
    out
}

/// Every change from `old` to `new`, one line each in operator words, e.g.
/// `limits.send_queue 1024 → 2048`, `module echo disabled`,
/// `auth tokens changed (3 → 4)`. Secret values never appear. Empty when
/// nothing that matters changed (the `source` path is ignored).
pub fn describe_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    // The declared settings, each in its declared words.
    ServerConfig::describe(&old.server, &new.server, "server", ".", &mut out);
    GatewayConfig::describe(&old.gateway, &new.gateway, "gateway", ".", &mut out);
    Limits::describe(&old.limits, &new.limits, "limits", ".", &mut out);
    let (a, b) = (&old.modules, &new.modules);
    ModulesConfig::describe(a, b, "modules", ".", &mut out);
    let (d, e) = (&old.diagnostics, &new.diagnostics);
    Diagnostics::describe(d, e, "diagnostics", ".", &mut out);
    ExternalConfig::describe(&old.external, &new.external, "external", ".", &mut out);
    LogConfig::describe(&old.log, &new.log, "log", ".", &mut out);

    // Secrets from here on: say what changed, never the values.
    match (&old.admin.token, &new.admin.token) {
        (None, Some(_)) => out.push("admin API enabled (admin.token set)".to_owned()),
        (Some(_), None) => out.push("admin API disabled (admin.token removed)".to_owned()),
        (Some(x), Some(y)) if x != y => out.push("admin.token changed".to_owned()),
        _ => {}
    }
    match (&old.metrics.token, &new.metrics.token) {
        (None, Some(_)) => out.push("/metrics now needs a token (metrics.token set)".to_owned()),
        (Some(_), None) => out.push("/metrics open again (metrics.token removed)".to_owned()),
        (Some(x), Some(y)) if x != y => out.push("metrics.token changed".to_owned()),
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
    if p.roles != q.roles {
        out.push(format!(
            "auth.roles changed ({} → {} roles)",
            p.roles.len(),
            q.roles.len()
        ));
    }
    match (&p.oidc, &q.oidc) {
        (None, Some(_)) => out.push("auth.oidc added".to_owned()),
        (Some(_), None) => out.push("auth.oidc removed".to_owned()),
        (Some(x), Some(y)) if x != y => out.push("auth.oidc changed".to_owned()),
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
    describe_amqp(
        old.trigger.amqp.as_ref(),
        new.trigger.amqp.as_ref(),
        &mut out,
    );

    // Modules: the union of names, in name order.
    let mut names: Vec<&String> = a.settings.keys().chain(b.settings.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let x = a.settings_for(name);
        let y = b.settings_for(name);
        describe_module(name, &x, &y, &mut out);
    }
    // Apps: a launch reads them live; running jobs keep what they had.
    let mut apps: Vec<&String> = old.apps.keys().chain(new.apps.keys()).collect();
    apps.sort();
    apps.dedup();
    for name in apps {
        match (old.apps.get(name), new.apps.get(name)) {
            (None, Some(_)) => out.push(format!("app {name} added")),
            (Some(_), None) => out.push(format!("app {name} removed (its running jobs go on)")),
            (Some(x), Some(y)) if x != y => out.push(format!("app {name} changed (new launches)")),
            _ => {}
        }
    }
    out
}

/// `[trigger.amqp]`: the AMQP source restarts on any change (see
/// `trigger::amqp`), so the line names what changed. The URL can carry a
/// password: it is named, never shown.
fn describe_amqp(old: Option<&AmqpConfig>, new: Option<&AmqpConfig>, out: &mut Vec<String>) {
    let (old, new) = match (old, new) {
        (None, None) => return,
        (None, Some(n)) => {
            out.push(format!("trigger.amqp added (exchange {:?})", n.exchange));
            return;
        }
        (Some(_), None) => {
            out.push("trigger.amqp removed".to_owned());
            return;
        }
        (Some(o), Some(n)) => (o, n),
    };
    let changed: Vec<&str> = [
        ("url", old.url != new.url),
        ("exchange", old.exchange != new.exchange),
        ("exchange_type", old.exchange_type != new.exchange_type),
        ("routing_key", old.routing_key != new.routing_key),
        ("queue_prefix", old.queue_prefix != new.queue_prefix),
        (
            "max_message_bytes",
            old.max_message_bytes != new.max_message_bytes,
        ),
        ("prefetch", old.prefetch != new.prefetch),
    ]
    .into_iter()
    .filter_map(|(key, differs)| differs.then_some(key))
    .collect();
    if !changed.is_empty() {
        out.push(format!("trigger.amqp changed ({})", changed.join(", ")));
    }
}

/// A module without a table has the default settings, so adding an empty
/// `[modules.x]` is no change, and removing a table reports what reverted.
fn describe_module(name: &str, old: &ModuleSettings, new: &ModuleSettings, out: &mut Vec<String>) {
    ModuleSettings::describe(old, new, &format!("module {name}"), " ", out);
    if old.config != new.config {
        out.push(format!("module {name} config changed"));
    }
}
