//! The validated configuration every part of the host reads.
//!
//! `config.toml` is parsed into these types (see `raw.rs` for the file's
//! shape and validation). Paths are absolute here: relative paths in the
//! file are resolved against the file's folder.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from (absolute), or `None` for embedded defaults.
    pub source: Option<PathBuf>,
    /// `[server]`
    pub server: ServerConfig,
    /// `[admin]`
    pub admin: AdminConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[trigger]`
    pub trigger: TriggerConfig,
    /// `[limits]`
    pub limits: Limits,
    /// `[modules]` and `[modules.<name>]`
    pub modules: ModulesConfig,
    /// `[diagnostics]`
    pub diagnostics: Diagnostics,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `listen = "127.0.0.1:8080"` (restart needed to change).
    pub listen: SocketAddr,
    /// `idle_timeout_secs = 300`: a websocket with no client message for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// `resume_grace_secs = 30`: how long a closed session can be resumed.
    pub resume_grace: Duration,
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// `token = "..."`: Bearer token for `/api/*`. `None` disables the admin API.
    pub token: Option<String>,
}

/// `[auth]`: how websocket clients are authenticated. Modes are tried in
/// this order: static tokens, JWT, bootstrap URL; the first that recognises
/// the token decides.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthConfig {
    /// `[[auth.tokens]]`
    pub tokens: Vec<StaticToken>,
    /// `[auth.jwt]`
    pub jwt: Option<JwtConfig>,
    /// `[auth.bootstrap]` (or `bootstrap_url = "..."` for short)
    pub bootstrap: Option<BootstrapConfig>,
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticToken {
    /// The secret the client presents.
    pub token: String,
    /// The user id it stands for.
    pub user: String,
    /// Roles, e.g. `["user"]`, `["admin"]`.
    pub roles: Vec<String>,
    /// Room patterns this user may subscribe to (JSON objects, `"*"` wildcards).
    pub allowed_rooms: Vec<serde_json::Value>,
}

/// `[auth.jwt]`
#[derive(Debug, Clone, PartialEq)]
pub struct JwtConfig {
    /// `secret = "..."`: HS256 shared secret.
    pub secret: Option<String>,
    /// `jwks_file = "keys.json"`: RS256/ES256/EdDSA public keys (a JWKS, e.g.
    /// a Keycloak realm's certs).
    pub jwks_file: Option<PathBuf>,
    /// `issuer = "..."`: required `iss`.
    pub issuer: Option<String>,
    /// `audience = ["..."]`: accepted `aud` values.
    pub audience: Vec<String>,
    /// `user_claim = "sub"`
    pub user_claim: String,
    /// `roles_claim = "roles"` (dotted paths allowed: `realm_access.roles`)
    pub roles_claim: String,
    /// `rooms_claim = "allowed_rooms"`
    pub rooms_claim: String,
    /// `leeway_secs = 30`: clock skew tolerated for `exp`/`nbf`.
    pub leeway: Duration,
}

/// `[auth.bootstrap]`: high-templar's model; the host asks this URL.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapConfig {
    /// `url = "http://127.0.0.1:8000/api/bootstrap/"`
    pub url: String,
    /// `timeout_ms = 5000`
    pub timeout: Duration,
}

/// `[trigger]`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriggerConfig {
    /// `tokens = ["..."]`: Bearer tokens accepted by `POST /trigger/`. Empty:
    /// the trigger endpoint refuses every request.
    pub tokens: Vec<String>,
}

/// `[limits]`: every input has a bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `max_frame_bytes = 65536`: largest client websocket message.
    pub max_frame_bytes: usize,
    /// `max_json_depth = 32`: deepest nesting in a client frame.
    pub max_json_depth: usize,
    /// `max_subscriptions = 1024`: per connection.
    pub max_subscriptions: usize,
    /// `send_queue = 1024`: per-connection outbox (messages); a client that
    /// falls this far behind is closed with code 4008.
    pub send_queue: usize,
    /// `max_connections = 19000`: websocket connections in total.
    pub max_connections: usize,
    /// `calls_per_second = 10000`: per connection.
    pub calls_per_second: u32,
    /// `max_calls_in_flight = 256`: per connection.
    pub max_calls_in_flight: usize,
    /// `call_timeout_ms = 10000`: default module call timeout.
    pub call_timeout: Duration,
    /// `max_params_bytes = 65536`: serialized params of one call.
    pub max_params_bytes: usize,
    /// `module_queue = 1024`: calls waiting for one module instance.
    pub module_queue: usize,
    /// `resume_buffer = 1024`: messages kept for a disconnected session.
    pub resume_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_json_depth: 32,
            max_subscriptions: 1024,
            send_queue: 1024,
            max_connections: 19_000,
            calls_per_second: 10_000,
            max_calls_in_flight: 256,
            call_timeout: Duration::from_secs(10),
            // Shared with the testkit, so module tests meet the same limit.
            max_params_bytes: modhost_plugin_api::abi::DEFAULT_MAX_PARAMS_BYTES,
            module_queue: 1024,
            resume_buffer: 1024,
        }
    }
}

/// `[modules]`
#[derive(Debug, Clone, PartialEq)]
pub struct ModulesConfig {
    /// `dir = "plugins"`: where signed `*.so` + `*.so.sig` are dropped.
    pub dir: PathBuf,
    /// `verify_keys = ["verify_keys"]`: folders of `<module>.pub` files.
    pub verify_keys: Vec<PathBuf>,
    /// `state_dir = ".modhost/state"`: rollback high-water marks and the like.
    pub state_dir: PathBuf,
    /// `allow_rollback = false`: accept a `seq` lower than one seen before.
    pub allow_rollback: bool,
    /// `[modules.<name>]` tables.
    pub settings: BTreeMap<String, ModuleSettings>,
}

/// One `[modules.<name>]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleSettings {
    /// `enabled = true` (host key, not passed to the module).
    pub enabled: bool,
    /// `call_timeout_ms = ...` (host key): overrides `[limits] call_timeout_ms`.
    pub call_timeout: Option<Duration>,
    /// `publishes_per_second = ...` (host key): the module's publish
    /// budget; `None` is the host default (50,000).
    pub publishes_per_second: Option<u32>,
    /// Every other key, as JSON, handed to the module untouched.
    pub config: serde_json::Value,
}

/// `[diagnostics]`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnostics {
    /// `ws_echo_path = "/echo"`: serve a websocket echo endpoint on the same
    /// stack as `/ws/` (for conformance testing). Off by default.
    pub ws_echo_path: Option<String>,
}

impl ModulesConfig {
    /// Settings for `module` (defaults when it has no table).
    pub fn settings_for(&self, module: &str) -> ModuleSettings {
        self.settings
            .get(module)
            .cloned()
            .unwrap_or(ModuleSettings {
                enabled: true,
                call_timeout: None,
                publishes_per_second: None,
                config: serde_json::Value::Object(Default::default()),
            })
    }
}
