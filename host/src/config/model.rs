//! The validated configuration every part of the host reads.
//!
//! `config.toml` is parsed into these types (see `raw.rs` for the file's
//! shape and validation). Paths are absolute here: relative paths in the
//! file are resolved against the file's folder.
//!
//! The tables made of settings with defaults (`ServerConfig`, `Limits`,
//! `ModulesConfig`, `ModuleSettings`, `Diagnostics`) are generated from
//! their declarations in `settings.rs` and re-exported here; the rest
//! (clients, tokens, secrets) are written out below.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

pub use super::apps::{AppConfig, AppProtocol, DEFAULT_PORT_RANGE, HashAlgorithm, RestartPolicy};
use super::json_path::JsonPath;
pub use super::settings::{
    ChallengeMode, Diagnostics, ExternalConfig, GatewayConfig, Limits, ModuleSettings,
    ModulesConfig, ServerConfig, StatusAccess,
};
pub use super::settings::{LogConfig, LogFormat};

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
    /// `[gateway]`
    pub gateway: GatewayConfig,
    /// `[trigger]`
    pub trigger: TriggerConfig,
    /// `[limits]`
    pub limits: Limits,
    /// `[modules]` and `[modules.<name>]`
    pub modules: ModulesConfig,
    /// `[diagnostics]`
    pub diagnostics: Diagnostics,
    /// `[external]`
    pub external: ExternalConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[apps.<name>]`: what users may launch as jobs
    pub apps: std::collections::BTreeMap<String, std::sync::Arc<AppConfig>>,
    /// `[history]`
    pub history: HistoryConfig,
    /// `[cluster]`: `None` when the host runs alone (no `nats_url`)
    pub cluster: Option<ClusterConfig>,
    /// `[metrics]`
    pub metrics: MetricsConfig,
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// `token = "..."`: Bearer token for `/api/*`. `None` disables the admin API.
    pub token: Option<String>,
}

/// `[metrics]`: who may read `GET /metrics`, and where it is served.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsConfig {
    /// `token = "..."`: Bearer token the scraper sends; `None` serves
    /// `/metrics` to anyone who can reach its address.
    pub token: Option<String>,
    /// `listen = "127.0.0.1:9090"`: serve `/metrics` there, and not on
    /// `server.listen`. Bound once at start.
    pub listen: Option<SocketAddr>,
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
    /// `[auth.oidc]`: tokens from an OpenID Connect issuer (Keycloak…).
    pub oidc: Option<OidcConfig>,
    /// `[[auth.roles]]`: rooms per role, for principals whose rooms are
    /// not given with them (accounts).
    pub roles: Vec<RoleRooms>,
    /// `[auth.accounts]`
    pub accounts: AccountsConfig,
}

/// One `[[auth.roles]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRooms {
    /// The role name.
    pub name: String,
    /// Room patterns for holders of the role; a value that is exactly
    /// `"{user}"` stands for the holder's user name.
    pub allowed_rooms: Vec<serde_json::Value>,
}

/// `[auth.accounts]`: users kept by the host (`state_dir/modhost.db`).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountsConfig {
    /// `enabled = true`: open (or make) the store at start; `false`: never;
    /// unset: when the store holds a user.
    pub enabled: Option<bool>,
    /// `access_token_secs = 600`
    pub access_token_ttl: Duration,
    /// `refresh_token_secs = 1209600`
    pub refresh_token_ttl: Duration,
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
    /// `user_id_path = "user.id"`: where the reply holds the user id.
    /// `None` (not set): `user.id` when `user` is an object, else `user`
    /// itself, so high-templar 2.x's `{"user": {"id": 1}}` and a plain
    /// `{"user": "alice"}` both work.
    pub user_id_path: Option<JsonPath>,
    /// `roles_path = "roles"`: where the reply holds the role names.
    pub roles_path: JsonPath,
}

/// `[auth.oidc]`: an OpenID Connect issuer whose keys the host fetches
/// (discovery, then its JWKS) and keeps fresh.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// `issuer = "http://sso.internal:8080/realms/main"`: the `iss` of its
    /// tokens; discovery is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// `audience = ["modhost"]` (required): accepted `aud` values.
    pub audience: Vec<String>,
    /// `roles_claim = "realm_access.roles"`: where the token holds its roles.
    pub roles_claim: JsonPath,
    /// `rooms_claim = "allowed_rooms"`: where the token holds its rooms;
    /// `None`: the rooms come from the user's roles.
    pub rooms_claim: Option<JsonPath>,
    /// `leeway_secs = 30`: clock skew tolerated for `exp`/`nbf`.
    pub leeway: Duration,
    /// `refresh_secs = 300`: how often the JWKS is fetched again.
    pub refresh: Duration,
    /// `unknown_kid_refresh_secs = 10`: at most one fetch of the JWKS per
    /// this long because a token named a key the host does not have.
    pub unknown_kid_refresh: Duration,
    /// `timeout_ms = 5000`: for each discovery or JWKS request, body included.
    pub timeout: Duration,
    /// `max_response_bytes = 262144`: largest discovery document or JWKS read.
    pub max_response_bytes: usize,
    /// `ca_file = "sso-ca.pem"`: a PEM file of CA certificates trusted for
    /// an https issuer beside the compiled-in Mozilla roots (relative to
    /// the config file's folder); `None`: those roots alone.
    pub ca_file: Option<std::path::PathBuf>,
}

/// `[trigger]`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriggerConfig {
    /// `tokens = ["..."]`: Bearer tokens accepted by `POST /trigger/`. Empty:
    /// the trigger endpoint refuses every request.
    pub tokens: Vec<String>,
    /// `[trigger.amqp]`: consume trigger messages from a RabbitMQ exchange
    /// (high-templar 3.x's transport). `None`: no AMQP source.
    pub amqp: Option<AmqpConfig>,
}

/// `[trigger.amqp]`: the exchange to consume and how.
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpConfig {
    /// `url = "amqp://user:pass@host:5672/%2f"` (required).
    pub url: AmqpUrl,
    /// `exchange = "hightemplar"`: declared as high-templar declares it
    /// (non-durable, not auto-deleted), so either side may create it.
    pub exchange: String,
    /// `exchange_type = "direct"`
    pub exchange_type: ExchangeType,
    /// `routing_key = "*"`: the binding key of our queue; high-templar and
    /// django-binder publish with the literal key `*`.
    pub routing_key: String,
    /// `queue_prefix = "modhost_"`: our queue is `<prefix><32 hex digits>`,
    /// exclusive and auto-deleted, so every host gets every message.
    pub queue_prefix: String,
    /// `max_message_bytes = 1048576`: larger messages are dropped with a warning.
    pub max_message_bytes: usize,
    /// `prefetch = 256`: unacknowledged messages the broker may send ahead.
    pub prefetch: u16,
}

/// An AMQP exchange type, as `exchange_type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeType {
    /// `"direct"`: routed by exact routing key (high-templar's choice).
    Direct,
    /// `"fanout"`: every bound queue gets every message.
    Fanout,
    /// `"topic"`: routing key patterns (`*`, `#`).
    Topic,
    /// `"headers"`: routed by header values.
    Headers,
}

impl ExchangeType {
    /// Every type, for parsing and hints.
    pub const ALL: [ExchangeType; 4] = [Self::Direct, Self::Fanout, Self::Topic, Self::Headers];

    /// The name AMQP and config.toml use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

/// The broker URL. It carries a password, so it is never shown as written:
/// `Debug` and `Display` print it with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    written: String,
    shown: String,
}

impl AmqpUrl {
    /// `written` must be a valid URL (checked by the config validation).
    pub(crate) fn new(written: String, shown: String) -> Self {
        Self { written, shown }
    }

    /// The URL as written, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.written
    }
}

impl std::fmt::Display for AmqpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AmqpUrl({:?})", self.shown)
    }
}

/// `[history]`: per-room history for clients that reconnect.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryConfig {
    /// `max_bytes`: all rooms' history together; past it whole rooms are
    /// dropped, never-published ones first, then the least recently used
    /// (their epoch changes).
    pub max_bytes: usize,
    /// `persist = true`: kept in `state_dir` across a clean restart.
    pub persist: bool,
    /// `[[history.rooms]]`, in file order: a room uses the first that
    /// permits it.
    pub rooms: Vec<HistoryRule>,
}

/// One `[[history.rooms]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRule {
    /// The rooms it covers, as `allowed_rooms` are written (`"*"` matches
    /// any value).
    pub room: serde_json::Value,
    /// Publications kept per room.
    pub size: usize,
    /// How long each is kept.
    pub age: Duration,
}

/// `[cluster]`: the NATS server hosts share to act as one platform.
#[derive(Clone, PartialEq)]
pub struct ClusterConfig {
    /// `nats_url`: `nats://host:4222` (or `tls://`); may carry `user:password@`.
    pub nats_url: String,
    /// `name`: this host's name among the others (its NATS connection name
    /// and the origin of its publications); unique per host.
    pub name: String,
    /// `credentials_file`: a NATS `.creds` file (JWT and nkey seed).
    pub credentials_file: Option<PathBuf>,
    /// `token`: a token the NATS server expects instead.
    pub token: Option<String>,
    /// `tls_ca_file`: PEM roots the NATS server's certificate is checked with.
    pub tls_ca_file: Option<PathBuf>,
    /// `tls_required = true`: refuse a connection without TLS.
    pub tls_required: bool,
    /// `subject_prefix`: the first tokens of every subject the hosts use
    /// (several platforms can share one NATS server).
    pub subject_prefix: String,
}

impl std::fmt::Debug for ClusterConfig {
    /// The token and any password in the URL stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = url::Url::parse(&self.nats_url).map_or_else(
            |_| "<unparsable>".to_owned(),
            |mut u| {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                u.to_string()
            },
        );
        f.debug_struct("ClusterConfig")
            .field("nats_url", &shown)
            .field("name", &self.name)
            .field("credentials_file", &self.credentials_file)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_required", &self.tls_required)
            .field("subject_prefix", &self.subject_prefix)
            .finish()
    }
}
