//! Stage one: the file's shape ([`RawConfig`], plain serde) and its
//! validation into [`Config`].
//!
//! Like ripgrep's `LowArgs`, the raw structs only say what an operator may
//! write, and every setting is an `Option` so that defaults live in one
//! place: the declarations in `settings.rs`, whose raw tables
//! (`RawServer`, `RawLimits`, …) are generated there. The structs here are
//! the rest: the top level, and the tables that are structure rather than
//! settings (`[admin]` here; `[auth]` and `[trigger]` in `auth.rs` and
//! `trigger.rs`), each declared with `keyed!` so the key check
//! (`shape.rs`) reads its keys from the struct itself.
//! Unknown keys are found by that check before serde runs, so serde is not
//! asked to deny them.
//!
//! Validation checks values and resolves relative paths against the config
//! file's folder; it does no other I/O (a missing `plugins/` folder is the
//! module loader's business, not the parser's).
//!
//! `[modules]` mixes four settings with one table per module, whose keys
//! are free apart from the host's own; [`RawModules`] reads both kinds in
//! one pass, keeping serde's spans for every value.
//!
//! Validation errors are [`Problem`]s that name a key path
//! (`limits.send_queue`); `error.rs` turns the path into a line number.

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

use serde::{Deserialize, de::MapAccess};

use super::{
    apps::{RawApp, validate_apps},
    auth::{RawAuth, validate_auth},
    cluster::{RawCluster, validate_cluster},
    declare::{At, Take, keyed, take_all},
    error::{KeyPath, Problem},
    history::{RawHistory, validate_history},
    model::{AdminConfig, Config, MetricsConfig},
    settings::{
        Diagnostics, ExternalConfig, GatewayConfig, Limits, ModuleSettings, ModulesConfig,
        RawDiagnostics, RawExternal, RawGateway, RawLimits, RawModuleHost, RawModulesSettings,
        RawServer, ServerConfig,
    },
    settings::{LogConfig, RawLog},
    shape::{Shape, Shaped},
    trigger::{RawTrigger, validate_trigger},
    value::{to_json, token_text},
};

keyed! {
    /// The whole file, as written.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(crate) struct RawConfig {
        server: RawServer,
        gateway: RawGateway,
        admin: RawAdmin,
        auth: RawAuth,
        trigger: RawTrigger,
        limits: RawLimits,
        modules: RawModules,
        diagnostics: RawDiagnostics,
        external: RawExternal,
        log: RawLog,
        apps: BTreeMap<String, RawApp>,
        history: RawHistory,
        cluster: RawCluster,
        metrics: RawMetrics,
    }
}

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct RawAdmin {
        token: Option<String>,
    }
}

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct RawMetrics {
        token: Option<String>,
        listen: Option<String>,
    }
}

/// `[modules]`: the declared settings, and every other key as a module's
/// table (the key check has made sure those are tables).
#[derive(Debug, Default)]
pub(crate) struct RawModules {
    settings: RawModulesSettings,
    tables: BTreeMap<String, RawModule>,
}

impl Shaped for RawModules {
    const SHAPE: Shape = Shape::Modules {
        settings: RawModulesSettings::FIELDS,
        module: RawModuleHost::FIELDS,
    };
}

impl Take for RawModules {
    const NAME: &'static str = "RawModules";
    fn take<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        self.settings.take(key, map)
    }
    fn other<'de, A: MapAccess<'de>>(&mut self, key: String, map: &mut A) -> Result<(), A::Error> {
        self.tables.insert(key, map.next_value()?);
        Ok(())
    }
}

impl<'de> Deserialize<'de> for RawModules {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        take_all(d)
    }
}

/// One `[modules.<name>]` table: the host's keys, and the module's own.
#[derive(Debug, Default)]
struct RawModule {
    host: RawModuleHost,
    rest: toml::Table,
}

impl Take for RawModule {
    const NAME: &'static str = "RawModule";
    fn take<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        self.host.take(key, map)
    }
    fn other<'de, A: MapAccess<'de>>(&mut self, key: String, map: &mut A) -> Result<(), A::Error> {
        self.rest.insert(key, map.next_value()?);
        Ok(())
    }
}

impl<'de> Deserialize<'de> for RawModule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        take_all(d)
    }
}

/// The secrets the shipped config.toml, the README and the docs publish
/// (the quickstart's admin, demo users and trigger token): fine on
/// loopback, refused anywhere else, since anyone who has read the README
/// could use them.
const DEMO_SECRETS: &[&str] = &[
    "change-me",
    "admin-secret",
    "alice-secret",
    "trigger-secret",
];

fn root() -> KeyPath {
    KeyPath::default()
}

impl RawConfig {
    /// Check every value and build the [`Config`]; relative paths are
    /// resolved against `base` (the config file's folder, absolute).
    /// `source` is left `None` for the caller to fill in.
    pub(crate) fn validate(self, base: &Path) -> Result<Config, Problem> {
        let at = |table: &str| At::table(root().key(table), base);
        let server = ServerConfig::read(self.server, &at("server"))?;
        let gateway = GatewayConfig::read(self.gateway, &at("gateway"))?;
        let admin = validate_admin(self.admin)?;
        let auth = validate_auth(self.auth, base)?;
        let trigger = validate_trigger(self.trigger)?;
        let limits = Limits::read(self.limits, &at("limits"))?;
        let modules = validate_modules(self.modules, &at("modules"))?;
        let diagnostics = Diagnostics::read(self.diagnostics, &at("diagnostics"))?;
        let external = ExternalConfig::read(self.external, &at("external"))?;
        let log = LogConfig::read(self.log, &at("log"))?;
        let apps = validate_apps(self.apps)?;
        let history = validate_history(self.history)?;
        let cluster = validate_cluster(self.cluster, base)?;
        let metrics = validate_metrics(self.metrics)?;
        // Two routes on one path would stop the router from being built.
        let module_routes = [external.path.clone(), format!("{}/key", external.path)];
        if let Some(echo) = &diagnostics.ws_echo_path
            && external.enabled
            && module_routes.contains(echo)
        {
            let path = root().key("external").key("path");
            return Err(Problem::invalid(
                &path,
                format!(
                    "{path} = {:?} and diagnostics.ws_echo_path = {echo:?} would serve the same path",
                    external.path
                ),
                "give the external-module websocket and the echo endpoint paths of their own",
            ));
        }
        let config = Config {
            source: None,
            server,
            gateway,
            admin,
            auth,
            trigger,
            limits,
            modules,
            diagnostics,
            external,
            log,
            apps,
            history,
            cluster,
            metrics,
        };
        match published_secret(&config) {
            Some((path, secret)) => Err(published_secret_problem(
                &path,
                secret,
                config.server.listen,
            )),
            None => Ok(config),
        }
    }
}

/// The first of the [`DEMO_SECRETS`] that `config` accepts, with its key
/// path, when it listens beyond loopback.
pub(crate) fn published_secret(config: &Config) -> Option<(KeyPath, &str)> {
    if config.server.listen.ip().is_loopback() {
        return None;
    }
    let admin = config
        .admin
        .token
        .iter()
        .map(|t| (root().key("admin").key("token"), t));
    let tokens = config.auth.tokens.iter().enumerate().map(|(i, t)| {
        let path = root().key("auth").key("tokens").index(i).key("token");
        (path, &t.token)
    });
    let trigger = config
        .trigger
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (root().key("trigger").key("tokens").index(i), t));
    admin
        .chain(tokens)
        .chain(trigger)
        .find(|(_, t)| DEMO_SECRETS.contains(&t.as_str()))
        .map(|(path, t)| (path, t.as_str()))
}

/// Why a published secret is refused, at its key.
pub(crate) fn published_secret_problem(
    path: &KeyPath,
    secret: &str,
    listen: SocketAddr,
) -> Problem {
    Problem::invalid(
        path,
        format!(
            "{path} is still a placeholder: {secret:?} is one of the quickstart's published demo secrets, and server.listen = {listen} is reachable from other machines"
        ),
        "set it to a long random secret (e.g. the output of `openssl rand -hex 32`), or listen on 127.0.0.1 only",
    )
}

fn validate_admin(raw: RawAdmin) -> Result<AdminConfig, Problem> {
    let path = root().key("admin").key("token");
    let Some(token) = raw.token else {
        return Ok(AdminConfig { token: None });
    };
    let token = token_text(
        &path,
        &token,
        "a long random secret, or remove the key to turn the admin API off",
    )?;
    Ok(AdminConfig { token: Some(token) })
}

fn validate_metrics(raw: RawMetrics) -> Result<MetricsConfig, Problem> {
    let at = root().key("metrics");
    let token = match raw.token {
        Some(token) => Some(token_text(
            &at.key("token"),
            &token,
            "a long random secret for the scraper, or remove the key to serve /metrics without one",
        )?),
        None => None,
    };
    let listen = match raw.listen {
        Some(addr) => Some(addr.parse::<SocketAddr>().map_err(|e| {
            let path = at.key("listen");
            Problem::invalid(
                &path,
                format!("{path} = {addr:?} is not an address and port: {e}"),
                "write it as \"127.0.0.1:9090\" (or remove the key to serve /metrics on server.listen)",
            )
        })?),
        None => None,
    };
    Ok(MetricsConfig { token, listen })
}

/// A module name as used in `verify_keys/<module>.pub` and `[modules.<name>]`.
fn is_module_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[modules]`: the declared settings, then one table per module.
fn validate_modules(raw: RawModules, at: &At<'_>) -> Result<ModulesConfig, Problem> {
    let mut modules = ModulesConfig::read(raw.settings, at)?;
    for (name, module) in raw.tables {
        let path = at.path.key(&name);
        if !is_module_name(&name) {
            return Err(Problem::invalid(
                &path,
                format!("[modules.{name:?}]: {name:?} is not a module name"),
                "module names are 1 to 64 characters of a-z, 0-9, '_' and '-', as in verify_keys/<module>.pub",
            ));
        }
        let mut settings = ModuleSettings::read(module.host, &At::table(path.clone(), at.base))?;
        let mut config = serde_json::Map::new();
        for (key, value) in &module.rest {
            config.insert(key.clone(), to_json(value, &path.key(key))?);
        }
        settings.config = serde_json::Value::Object(config);
        modules.settings.insert(name, settings);
    }
    Ok(modules)
}
