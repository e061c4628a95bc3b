//! Stage one: the file's shape ([`RawConfig`], plain serde) and its
//! validation into [`Config`].
//!
//! Like ripgrep's `LowArgs`, the raw structs only say what an operator may
//! write: every table is `deny_unknown_fields`, and every setting is an
//! `Option` so that defaults live in one place ([`RawConfig::validate`]) rather
//! than in serde attributes. Validation checks values and resolves relative
//! paths against the config file's folder; it does no other I/O (a missing
//! `plugins/` folder is the module loader's business, not the parser's).
//!
//! `[modules]` is the one table serde cannot describe: besides four settings
//! it holds one table per module, whose keys are free. It is read as a plain
//! TOML table and taken apart by hand in [`validate_modules`].
//!
//! Validation errors are [`Problem`]s that name a key path
//! (`limits.send_queue`); `error.rs` turns the path into a line number.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Component, Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use super::{
    error::{KeyPath, Kind, Problem},
    model::{
        AdminConfig, AuthConfig, BootstrapConfig, Config, Diagnostics, JwtConfig, Limits,
        ModuleSettings, ModulesConfig, ServerConfig, StaticToken, TriggerConfig,
    },
};

/// The whole file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    server: RawServer,
    admin: RawAdmin,
    auth: RawAuth,
    trigger: RawTrigger,
    limits: RawLimits,
    /// Settings and `[modules.<name>]` tables; see [`validate_modules`].
    modules: toml::Table,
    diagnostics: RawDiagnostics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: Option<String>,
    idle_timeout_secs: Option<u64>,
    resume_grace_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAdmin {
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    tokens: Vec<RawToken>,
    jwt: Option<RawJwt>,
    bootstrap: Option<RawBootstrap>,
    /// Shorthand for `[auth.bootstrap] url = ...`.
    bootstrap_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    token: String,
    user: String,
    roles: Option<Vec<String>>,
    #[serde(default)]
    allowed_rooms: Vec<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawJwt {
    secret: Option<String>,
    jwks_file: Option<String>,
    issuer: Option<String>,
    audience: OneOrMany,
    user_claim: Option<String>,
    roles_claim: Option<String>,
    rooms_claim: Option<String>,
    leeway_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    url: String,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTrigger {
    tokens: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_frame_bytes: Option<u64>,
    max_json_depth: Option<u64>,
    max_subscriptions: Option<u64>,
    send_queue: Option<u64>,
    max_connections: Option<u64>,
    calls_per_second: Option<u64>,
    max_calls_in_flight: Option<u64>,
    call_timeout_ms: Option<u64>,
    max_params_bytes: Option<u64>,
    module_queue: Option<u64>,
    resume_buffer: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDiagnostics {
    ws_echo_path: Option<String>,
}

/// `"x"` or `["x", "y"]`.
#[derive(Debug, Default)]
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![s.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}

// Defaults for settings that are not in `Limits::default()`.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
const DEFAULT_RESUME_GRACE_SECS: u64 = 30;
const DEFAULT_JWT_LEEWAY_SECS: u64 = 30;
const DEFAULT_BOOTSTRAP_TIMEOUT_MS: u64 = 5000;
const DEFAULT_MODULES_DIR: &str = "plugins";
const DEFAULT_VERIFY_KEYS: &str = "verify_keys";
const DEFAULT_STATE_DIR: &str = ".modhost/state";
/// Roles of a `[[auth.tokens]]` entry that lists none.
const DEFAULT_ROLES: &[&str] = &["user"];

/// The admin token in the shipped config.toml: fine on loopback, refused
/// anywhere else.
const PLACEHOLDER_ADMIN_TOKEN: &str = "change-me";

/// `[modules]` keys that are settings; every other key names a module.
const MODULES_SETTINGS: &[&str] = &["dir", "verify_keys", "state_dir", "allow_rollback"];

/// Longest call timeout anywhere (1 h): a call that long is a hung module.
const MAX_CALL_TIMEOUT_MS: u64 = 3_600_000;
/// Largest `[modules.<name>] publishes_per_second`.
const MAX_PUBLISHES_PER_SECOND: u64 = 10_000_000;
const MIB: u64 = 1024 * 1024;

/// Bounds for one `[limits]` key. Zero is refused everywhere: a zero queue
/// or rate would make the host refuse everything, which is never meant.
struct Bound {
    key: &'static str,
    min: u64,
    max: u64,
    what: &'static str,
}

const LIMIT_BOUNDS: &[Bound] = &[
    Bound {
        key: "max_frame_bytes",
        min: 256,
        max: 64 * MIB,
        what: "largest client websocket message, in bytes (default 65536)",
    },
    Bound {
        key: "max_json_depth",
        min: 1,
        max: 512,
        what: "deepest JSON nesting in a client frame (default 32)",
    },
    Bound {
        key: "max_subscriptions",
        min: 1,
        max: 1_000_000,
        what: "rooms one connection may subscribe to (default 1024)",
    },
    Bound {
        key: "send_queue",
        min: 1,
        max: 1_000_000,
        what: "per-connection outbox, in messages (default 1024)",
    },
    Bound {
        key: "max_connections",
        min: 1,
        max: 10_000_000,
        what: "websocket connections in total (default 19000)",
    },
    Bound {
        key: "calls_per_second",
        min: 1,
        max: 10_000_000,
        what: "module calls per second per connection (default 10000)",
    },
    Bound {
        key: "max_calls_in_flight",
        min: 1,
        max: 1_000_000,
        what: "unanswered calls per connection (default 256)",
    },
    Bound {
        key: "call_timeout_ms",
        min: 1,
        max: MAX_CALL_TIMEOUT_MS,
        what: "module call timeout in milliseconds, at most 1 hour (default 10000)",
    },
    Bound {
        key: "max_params_bytes",
        min: 64,
        max: 64 * MIB,
        what: "serialized params of one call, in bytes (default 65536)",
    },
    Bound {
        key: "module_queue",
        min: 1,
        max: 1_000_000,
        what: "calls waiting for one module instance (default 1024)",
    },
    Bound {
        key: "resume_buffer",
        min: 1,
        max: 1_000_000,
        what: "messages kept for a disconnected session (default 1024)",
    },
];

fn root() -> KeyPath {
    KeyPath::default()
}

/// `value` at `path` must lie in `min..=max`.
fn bounded(path: &KeyPath, value: u64, min: u64, max: u64, what: &str) -> Result<u64, Problem> {
    if value < min {
        return Err(Problem::invalid(
            path,
            format!("{path} = {value} is too small: it must be at least {min}"),
            format!("{path}: {what}"),
        ));
    }
    if value > max {
        return Err(Problem::invalid(
            path,
            format!("{path} = {value} is too large: it must be at most {max}"),
            format!("{path}: {what}"),
        ));
    }
    Ok(value)
}

/// A secret or name that must be non-empty and have no surrounding spaces
/// (an HTTP header value is trimmed, so a padded token could never match).
fn token_text(path: &KeyPath, value: &str, what: &str) -> Result<String, Problem> {
    if value.is_empty() {
        return Err(Problem::invalid(
            path,
            format!("{path} is empty"),
            format!("give {what}"),
        ));
    }
    if value.trim() != value {
        return Err(Problem::invalid(
            path,
            format!("{path} starts or ends with whitespace"),
            "remove the spaces; clients could never present it exactly",
        ));
    }
    Ok(value.to_owned())
}

/// Resolve a path from the file against the file's folder, dropping `.`
/// components (`./plugins` → `/srv/modhost/plugins`).
fn resolve(base: &Path, path: &KeyPath, value: &str) -> Result<PathBuf, Problem> {
    if value.is_empty() {
        return Err(Problem::invalid(
            path,
            format!("{path} is an empty path"),
            "relative paths are resolved against the config file's folder; use \".\" for that folder itself",
        ));
    }
    let joined = base.join(value);
    let mut out = PathBuf::new();
    for c in joined.components() {
        if c != Component::CurDir {
            out.push(c.as_os_str());
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    Ok(out)
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

fn millis(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl RawConfig {
    /// Check every value and build the [`Config`]; relative paths are
    /// resolved against `base` (the config file's folder, absolute).
    /// `source` is left `None` for the caller to fill in.
    pub(crate) fn validate(self, base: &Path) -> Result<Config, Problem> {
        let server = validate_server(self.server)?;
        let admin = validate_admin(self.admin, &server)?;
        let auth = validate_auth(self.auth, base)?;
        let trigger = validate_trigger(self.trigger)?;
        let limits = validate_limits(self.limits)?;
        let modules = validate_modules(self.modules, base)?;
        let diagnostics = validate_diagnostics(self.diagnostics)?;
        Ok(Config {
            source: None,
            server,
            admin,
            auth,
            trigger,
            limits,
            modules,
            diagnostics,
        })
    }
}

fn validate_server(raw: RawServer) -> Result<ServerConfig, Problem> {
    let table = root().key("server");
    let listen_path = table.key("listen");
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        let hint = if listen_text.parse::<std::net::IpAddr>().is_ok() {
            format!("add a port: \"{listen_text}:8080\"")
        } else {
            "write an IP address and a port: \"127.0.0.1:8080\" (this machine only) or \"0.0.0.0:8080\" (all interfaces); host names are not resolved, IPv6 goes in brackets: \"[::1]:8080\"".to_owned()
        };
        Problem::invalid(&listen_path, format!("server.listen = {listen_text:?} is not a socket address"), hint)
    })?;
    let idle = bounded(
        &table.key("idle_timeout_secs"),
        raw.idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
        1,
        7 * 86_400,
        "seconds without a client message before a websocket is closed, at most a week (default 300)",
    )?;
    let grace = bounded(
        &table.key("resume_grace_secs"),
        raw.resume_grace_secs.unwrap_or(DEFAULT_RESUME_GRACE_SECS),
        0,
        86_400,
        "seconds a closed session can be resumed, at most a day; 0 turns resuming off (default 30)",
    )?;
    Ok(ServerConfig {
        listen,
        idle_timeout: secs(idle),
        resume_grace: secs(grace),
    })
}

fn validate_admin(raw: RawAdmin, server: &ServerConfig) -> Result<AdminConfig, Problem> {
    let path = root().key("admin").key("token");
    let Some(token) = raw.token else {
        return Ok(AdminConfig { token: None });
    };
    let token = token_text(
        &path,
        &token,
        "a long random secret, or remove the key to turn the admin API off",
    )?;
    if token == PLACEHOLDER_ADMIN_TOKEN && !server.listen.ip().is_loopback() {
        return Err(Problem::invalid(
            &path,
            format!(
                "admin.token is still the placeholder {PLACEHOLDER_ADMIN_TOKEN:?} while server.listen = {} is reachable from other machines",
                server.listen
            ),
            "set admin.token to a long random secret (e.g. the output of `openssl rand -hex 32`), or remove it to turn the admin API off",
        ));
    }
    Ok(AdminConfig { token: Some(token) })
}

fn validate_auth(raw: RawAuth, base: &Path) -> Result<AuthConfig, Problem> {
    let table = root().key("auth");
    let mut tokens: Vec<StaticToken> = Vec::with_capacity(raw.tokens.len());
    for (i, t) in raw.tokens.into_iter().enumerate() {
        let entry = table.key("tokens").index(i);
        let token = token_text(
            &entry.key("token"),
            &t.token,
            "the secret this client presents",
        )?;
        if let Some(first) = tokens.iter().position(|other| other.token == token) {
            return Err(Problem::invalid(
                &entry.key("token"),
                format!(
                    "auth.tokens[{i}].token is the same secret as auth.tokens[{first}].token (user {:?})",
                    tokens[first].user
                ),
                "every static token must be unique: a token decides who the client is",
            ));
        }
        let user = token_text(
            &entry.key("user"),
            &t.user,
            "the user id this token stands for",
        )?;
        let roles = match t.roles {
            Some(roles) => roles
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    token_text(
                        &entry.key("roles").index(j),
                        r,
                        "a role name such as \"user\" or \"admin\"",
                    )
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => DEFAULT_ROLES.iter().map(|r| (*r).to_owned()).collect(),
        };
        let allowed_rooms = t
            .allowed_rooms
            .iter()
            .enumerate()
            .map(|(j, room)| room_pattern(&entry.key("allowed_rooms").index(j), room))
            .collect::<Result<Vec<_>, _>>()?;
        tokens.push(StaticToken {
            token,
            user,
            roles,
            allowed_rooms,
        });
    }

    let jwt = raw
        .jwt
        .map(|j| validate_jwt(j, &table.key("jwt"), base))
        .transpose()?;

    let bootstrap = match (raw.bootstrap, raw.bootstrap_url) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid(
                &table.key("bootstrap_url"),
                "auth.bootstrap_url and [auth.bootstrap] are both set",
                "bootstrap_url is shorthand for [auth.bootstrap] url; keep one of them",
            ));
        }
        (Some(b), None) => {
            let path = table.key("bootstrap");
            let url = bootstrap_url(&path.key("url"), &b.url)?;
            let timeout = bounded(
                &path.key("timeout_ms"),
                b.timeout_ms.unwrap_or(DEFAULT_BOOTSTRAP_TIMEOUT_MS),
                1,
                300_000,
                "how long to wait for the bootstrap URL, in milliseconds, at most 5 minutes (default 5000)",
            )?;
            Some(BootstrapConfig {
                url,
                timeout: millis(timeout),
            })
        }
        (None, Some(url)) => Some(BootstrapConfig {
            url: bootstrap_url(&table.key("bootstrap_url"), &url)?,
            timeout: millis(DEFAULT_BOOTSTRAP_TIMEOUT_MS),
        }),
        (None, None) => None,
    };
    Ok(AuthConfig {
        tokens,
        jwt,
        bootstrap,
    })
}

fn bootstrap_url(path: &KeyPath, url: &str) -> Result<String, Problem> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && url.trim() == url => {
            Ok(url.to_owned())
        }
        _ => Err(Problem::invalid(
            path,
            format!("{path} = {url:?} is not an http(s) URL"),
            "write a full URL: \"http://127.0.0.1:8000/api/bootstrap/\"",
        )),
    }
}

/// One `allowed_rooms` entry: an object whose values are strings, numbers or
/// booleans (`"*"` is the wildcard), as JSON.
fn room_pattern(path: &KeyPath, room: &toml::Value) -> Result<serde_json::Value, Problem> {
    let example = "write a room as an inline table of plain values: { target = \"message\", customer = \"*\" }";
    let toml::Value::Table(table) = room else {
        return Err(Problem::wrong_type(
            path,
            format!("{path} is {}, not a room", describe(room)),
            example,
        ));
    };
    let mut object = serde_json::Map::new();
    for (key, value) in table {
        let vpath = path.key(key);
        let json = match value {
            toml::Value::String(_)
            | toml::Value::Integer(_)
            | toml::Value::Float(_)
            | toml::Value::Boolean(_)
            | toml::Value::Datetime(_) => to_json(value, &vpath)?,
            other => {
                return Err(Problem::wrong_type(
                    &vpath,
                    format!(
                        "{vpath} is {}; room values must be strings, numbers or booleans",
                        describe(other)
                    ),
                    example,
                ));
            }
        };
        object.insert(key.clone(), json);
    }
    Ok(serde_json::Value::Object(object))
}

fn validate_jwt(raw: RawJwt, path: &KeyPath, base: &Path) -> Result<JwtConfig, Problem> {
    let secret = raw
        .secret
        .as_deref()
        .map(|s| token_text(&path.key("secret"), s, "the HS256 shared secret"))
        .transpose()?;
    let jwks_file = raw
        .jwks_file
        .as_deref()
        .map(|f| resolve(base, &path.key("jwks_file"), f))
        .transpose()?;
    if secret.is_none() && jwks_file.is_none() {
        return Err(Problem::invalid(
            path,
            "[auth.jwt] has neither secret nor jwks_file, so no token could ever be verified",
            "add secret = \"...\" (HS256) and/or jwks_file = \"keys.json\" (RS256/ES256/EdDSA public keys), or remove [auth.jwt]",
        ));
    }
    let issuer = raw
        .issuer
        .as_deref()
        .map(|s| token_text(&path.key("issuer"), s, "the expected `iss`"))
        .transpose()?;
    let audience = raw
        .audience
        .0
        .iter()
        .map(|a| token_text(&path.key("audience"), a, "an accepted `aud` value"))
        .collect::<Result<Vec<_>, _>>()?;
    let claim = |key: &str, value: Option<String>, default: &str| -> Result<String, Problem> {
        match value {
            Some(v) => token_text(&path.key(key), &v, "a claim name (dotted paths allowed)"),
            None => Ok(default.to_owned()),
        }
    };
    let user_claim = claim("user_claim", raw.user_claim, "sub")?;
    let roles_claim = claim("roles_claim", raw.roles_claim, "roles")?;
    let rooms_claim = claim("rooms_claim", raw.rooms_claim, "allowed_rooms")?;
    let leeway = bounded(
        &path.key("leeway_secs"),
        raw.leeway_secs.unwrap_or(DEFAULT_JWT_LEEWAY_SECS),
        0,
        3600,
        "clock skew tolerated for exp/nbf, in seconds, at most 1 hour (default 30)",
    )?;
    Ok(JwtConfig {
        secret,
        jwks_file,
        issuer,
        audience,
        user_claim,
        roles_claim,
        rooms_claim,
        leeway: secs(leeway),
    })
}

fn validate_trigger(raw: RawTrigger) -> Result<TriggerConfig, Problem> {
    let path = root().key("trigger").key("tokens");
    let mut tokens: Vec<String> = Vec::with_capacity(raw.tokens.len());
    for (i, t) in raw.tokens.iter().enumerate() {
        let item = path.index(i);
        let t = token_text(&item, t, "a Bearer token for POST /trigger/")?;
        if tokens.contains(&t) {
            return Err(Problem::invalid(
                &item,
                format!("{item} repeats an earlier trigger token"),
                "remove the duplicate",
            ));
        }
        tokens.push(t);
    }
    Ok(TriggerConfig { tokens })
}

fn validate_limits(raw: RawLimits) -> Result<Limits, Problem> {
    let d = Limits::default();
    let table = root().key("limits");
    let values = [
        (raw.max_frame_bytes, d.max_frame_bytes as u64),
        (raw.max_json_depth, d.max_json_depth as u64),
        (raw.max_subscriptions, d.max_subscriptions as u64),
        (raw.send_queue, d.send_queue as u64),
        (raw.max_connections, d.max_connections as u64),
        (raw.calls_per_second, u64::from(d.calls_per_second)),
        (raw.max_calls_in_flight, d.max_calls_in_flight as u64),
        (raw.call_timeout_ms, d.call_timeout.as_millis() as u64),
        (raw.max_params_bytes, d.max_params_bytes as u64),
        (raw.module_queue, d.module_queue as u64),
        (raw.resume_buffer, d.resume_buffer as u64),
    ];
    let mut checked = [0u64; 11];
    for ((bound, (value, default)), out) in LIMIT_BOUNDS.iter().zip(values).zip(checked.iter_mut())
    {
        *out = bounded(
            &table.key(bound.key),
            value.unwrap_or(default),
            bound.min,
            bound.max,
            bound.what,
        )?;
    }
    // Every maximum above fits in u32 and usize, so the casts are lossless.
    let [
        max_frame_bytes,
        max_json_depth,
        max_subscriptions,
        send_queue,
        max_connections,
        calls_per_second,
        max_calls_in_flight,
        call_timeout_ms,
        max_params_bytes,
        module_queue,
        resume_buffer,
    ] = checked;
    Ok(Limits {
        max_frame_bytes: max_frame_bytes as usize,
        max_json_depth: max_json_depth as usize,
        max_subscriptions: max_subscriptions as usize,
        send_queue: send_queue as usize,
        max_connections: max_connections as usize,
        calls_per_second: calls_per_second as u32,
        max_calls_in_flight: max_calls_in_flight as usize,
        call_timeout: millis(call_timeout_ms),
        max_params_bytes: max_params_bytes as usize,
        module_queue: module_queue as usize,
        resume_buffer: resume_buffer as usize,
    })
}

/// A module name as used in `verify_keys/<module>.pub` and `[modules.<name>]`.
fn is_module_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[modules]`: four settings, and one table per module.
fn validate_modules(mut table: toml::Table, base: &Path) -> Result<ModulesConfig, Problem> {
    let here = root().key("modules");
    let path_setting =
        |table: &mut toml::Table, key: &str, default: &str| -> Result<PathBuf, Problem> {
            let p = here.key(key);
            match table.remove(key) {
                None => resolve(base, &p, default),
                Some(toml::Value::String(s)) => resolve(base, &p, &s),
                Some(other) => Err(reserved_type(&p, &other, "a folder path (a string)")),
            }
        };
    let dir = path_setting(&mut table, "dir", DEFAULT_MODULES_DIR)?;
    let state_dir = path_setting(&mut table, "state_dir", DEFAULT_STATE_DIR)?;

    let vk = here.key("verify_keys");
    let verify_keys = match table.remove("verify_keys") {
        None => vec![resolve(base, &vk, DEFAULT_VERIFY_KEYS)?],
        Some(toml::Value::String(s)) => vec![resolve(base, &vk, &s)?],
        Some(toml::Value::Array(items)) => {
            if items.is_empty() {
                return Err(Problem::invalid(
                    &vk,
                    "modules.verify_keys is empty, so no module could ever be verified",
                    "list at least one folder of <module>.pub files: verify_keys = [\"verify_keys\"]",
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    toml::Value::String(s) => resolve(base, &vk.index(i), s),
                    other => Err(reserved_type(
                        &vk.index(i),
                        other,
                        "a folder path (a string)",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(other) => {
            return Err(reserved_type(
                &vk,
                &other,
                "a folder path or an array of folder paths",
            ));
        }
    };

    let allow_rollback = match table.remove("allow_rollback") {
        None => false,
        Some(toml::Value::Boolean(b)) => b,
        Some(other) => {
            return Err(reserved_type(
                &here.key("allow_rollback"),
                &other,
                "true or false",
            ));
        }
    };

    let mut settings = BTreeMap::new();
    for (name, value) in table {
        let path = here.key(&name);
        let toml::Value::Table(module) = value else {
            return Err(Problem::unknown_key(
                &path,
                MODULES_SETTINGS,
                &format!("any other key must be a module's table, e.g. [modules.{name}]"),
            ));
        };
        if !is_module_name(&name) {
            return Err(Problem::invalid(
                &path,
                format!("[modules.{name:?}]: {name:?} is not a module name"),
                "module names are 1 to 64 characters of a-z, 0-9, '_' and '-', as in verify_keys/<module>.pub",
            ));
        }
        settings.insert(name, validate_module(module, &path)?);
    }
    Ok(ModulesConfig {
        dir,
        verify_keys,
        state_dir,
        allow_rollback,
        settings,
    })
}

fn reserved_type(path: &KeyPath, value: &toml::Value, expected: &str) -> Problem {
    let hint = if matches!(value, toml::Value::Table(_)) {
        format!(
            "{} is a [modules] setting, so it cannot be a module name",
            path
        )
    } else {
        String::new()
    };
    Problem::new(
        Kind::Type,
        path,
        format!("{path} is {}, expected {expected}", describe(value)),
        hint,
    )
}

/// One `[modules.<name>]` table: host keys out, the rest to JSON.
fn validate_module(mut table: toml::Table, path: &KeyPath) -> Result<ModuleSettings, Problem> {
    let enabled = match table.remove("enabled") {
        None => true,
        Some(toml::Value::Boolean(b)) => b,
        Some(other) => {
            let p = path.key("enabled");
            return Err(Problem::wrong_type(
                &p,
                format!("{p} is {}, expected true or false", describe(&other)),
                "`enabled` is read by the host: false keeps the module from loading",
            ));
        }
    };
    let call_timeout = match table.remove("call_timeout_ms") {
        None => None,
        Some(toml::Value::Integer(ms)) => {
            let p = path.key("call_timeout_ms");
            let Ok(ms) = u64::try_from(ms) else {
                return Err(Problem::invalid(
                    &p,
                    format!("{p} = {ms} is negative"),
                    "a call timeout in milliseconds, 1 to 3600000; remove the key to use limits.call_timeout_ms",
                ));
            };
            Some(millis(bounded(
                &p,
                ms,
                1,
                MAX_CALL_TIMEOUT_MS,
                "this module's call timeout in milliseconds, at most 1 hour; overrides limits.call_timeout_ms",
            )?))
        }
        Some(other) => {
            let p = path.key("call_timeout_ms");
            return Err(Problem::wrong_type(
                &p,
                format!(
                    "{p} is {}, expected a whole number of milliseconds",
                    describe(&other)
                ),
                "`call_timeout_ms` is read by the host; write it without quotes: call_timeout_ms = 2000",
            ));
        }
    };
    let publishes_per_second = match table.remove("publishes_per_second") {
        None => None,
        Some(toml::Value::Integer(n)) => {
            let p = path.key("publishes_per_second");
            let Ok(n) = u64::try_from(n) else {
                return Err(Problem::invalid(
                    &p,
                    format!("{p} = {n} is negative"),
                    "publishes per second, 1 to 10000000; remove the key to use the default (50000)",
                ));
            };
            Some(bounded(
                &p,
                n,
                1,
                MAX_PUBLISHES_PER_SECOND,
                "how many messages this module may publish per second, at most 10000000",
            )? as u32)
        }
        Some(other) => {
            let p = path.key("publishes_per_second");
            return Err(Problem::wrong_type(
                &p,
                format!("{p} is {}, expected a whole number", describe(&other)),
                "`publishes_per_second` is read by the host; write it without quotes: publishes_per_second = 1000",
            ));
        }
    };
    let mut config = serde_json::Map::new();
    for (key, value) in &table {
        config.insert(key.clone(), to_json(value, &path.key(key))?);
    }
    Ok(ModuleSettings {
        enabled,
        call_timeout,
        publishes_per_second,
        config: serde_json::Value::Object(config),
    })
}

/// TOML → JSON: datetimes become their TOML text; NaN and infinities have no
/// JSON form and are refused.
fn to_json(value: &toml::Value, path: &KeyPath) -> Result<serde_json::Value, Problem> {
    use serde_json::Value as J;
    Ok(match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => J::Number(n),
            None => {
                return Err(Problem::invalid(
                    path,
                    format!("{path} = {f} has no JSON form"),
                    "nan and inf cannot be handed to a module; use a string or a finite number",
                ));
            }
        },
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &path.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v, &path.key(k))?)))
                .collect::<Result<_, Problem>>()?,
        ),
    })
}

/// "a string", "an array", … for messages.
fn describe(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Paths the host serves itself; an echo endpoint there would shadow them.
const HOST_ROUTES: &[&str] = &[
    "/ws",
    "/ws/",
    "/trigger",
    "/trigger/",
    "/health",
    "/metrics",
    "/module",
];

fn validate_diagnostics(raw: RawDiagnostics) -> Result<Diagnostics, Problem> {
    let path = root().key("diagnostics").key("ws_echo_path");
    let Some(p) = raw.ws_echo_path else {
        return Ok(Diagnostics { ws_echo_path: None });
    };
    let hint = "use a path of its own starting with '/', e.g. \"/echo\"; remove the key to turn the echo endpoint off";
    if !p.starts_with('/') || p.len() < 2 || p.contains(char::is_whitespace) {
        return Err(Problem::invalid(
            &path,
            format!("diagnostics.ws_echo_path = {p:?} is not a path such as \"/echo\""),
            hint,
        ));
    }
    if HOST_ROUTES.contains(&p.as_str()) || p.starts_with("/api/") || p == "/api" {
        return Err(Problem::invalid(
            &path,
            format!("diagnostics.ws_echo_path = {p:?} would shadow the host's own {p} endpoint"),
            hint,
        ));
    }
    Ok(Diagnostics {
        ws_echo_path: Some(p),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn validate_text(text: &str) -> Result<Config, Problem> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| panic!("{text}: {e}"))?;
        raw.validate(Path::new("/etc/modhost"))
    }

    proptest! {
        /// Every limit accepts exactly its documented range: values inside
        /// it come through unchanged, values outside are a problem at that
        /// key (never a panic, a wrap or a silent clamp).
        #[test]
        fn limits_accept_exactly_their_range(
            which in 0..LIMIT_BOUNDS.len(),
            value in prop_oneof![
                0u64..2_000,
                any::<u32>().prop_map(u64::from),
                (0u64..=i64::MAX as u64),
            ],
        ) {
            let bound = &LIMIT_BOUNDS[which];
            let text = format!("[limits]\n{} = {value}\n", bound.key);
            let result = validate_text(&text);
            if (bound.min..=bound.max).contains(&value) {
                let limits = result.unwrap().limits;
                let got = match bound.key {
                    "max_frame_bytes" => limits.max_frame_bytes as u64,
                    "max_json_depth" => limits.max_json_depth as u64,
                    "max_subscriptions" => limits.max_subscriptions as u64,
                    "send_queue" => limits.send_queue as u64,
                    "max_connections" => limits.max_connections as u64,
                    "calls_per_second" => u64::from(limits.calls_per_second),
                    "max_calls_in_flight" => limits.max_calls_in_flight as u64,
                    "call_timeout_ms" => limits.call_timeout.as_millis() as u64,
                    "max_params_bytes" => limits.max_params_bytes as u64,
                    "module_queue" => limits.module_queue as u64,
                    "resume_buffer" => limits.resume_buffer as u64,
                    other => panic!("a limit this test does not know: {other}"),
                };
                prop_assert_eq!(got, value);
            } else {
                let problem = result.unwrap_err();
                prop_assert!(format!("{problem:?}").contains(bound.key), "{problem:?}");
            }
        }

        /// `[modules.<name>]` tables pass through to the module as JSON,
        /// whatever keys and scalar values they hold.
        #[test]
        fn module_tables_pass_through(
            entries in proptest::collection::btree_map(
                "[a-z][a-z_]{0,8}",
                prop_oneof![
                    any::<i64>().prop_map(toml::Value::Integer),
                    any::<bool>().prop_map(toml::Value::Boolean),
                    "[ -~]{0,16}".prop_map(toml::Value::String),
                ],
                0..6,
            ),
        ) {
            // Keys the host reads itself are not passed through.
            let entries: BTreeMap<String, toml::Value> = entries
                .into_iter()
                .filter(|(k, _)| k != "enabled" && k != "call_timeout_ms")
                .collect();
            let mut table = toml::Table::new();
            table.insert(
                "modules".into(),
                toml::Value::Table(toml::Table::from_iter([(
                    "notes".to_owned(),
                    toml::Value::Table(entries.clone().into_iter().collect()),
                )])),
            );
            let config = validate_text(&toml::to_string(&table).unwrap()).unwrap();
            let json = &config.modules.settings_for("notes").config;
            for (k, v) in &entries {
                let want = match v {
                    toml::Value::Integer(i) => serde_json::json!(i),
                    toml::Value::Boolean(b) => serde_json::json!(b),
                    toml::Value::String(s) => serde_json::json!(s),
                    _ => unreachable!(),
                };
                prop_assert_eq!(&json[k], &want, "{}", k);
            }
        }
    }
}
