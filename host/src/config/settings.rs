//! Every setting of config.toml with a default, declared once.
//!
//! Each entry below is the only place its setting is written down: the
//! model field other code reads, the raw serde field, the default, the
//! bounds and the hint shown when a value is outside them, whether a change
//! applies live or needs a restart, and its live-diff line all come from it
//! (see `declare.rs` for the entry's shape and why it is a macro). A unit
//! test checks that the repository's config.toml shows each key with this
//! default and names no key that is not declared.
//!
//! The tables that are structure rather than settings (`[admin]`, `[auth]`,
//! `[trigger]`: secrets and lists of clients) are plain serde structs in
//! `raw.rs`, `auth.rs` and `trigger.rs`; their keys are still declared
//! once, by those structs.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use super::{
    codec::{
        Addr, Choice, Count, Flag, Folder, Folders, Millis, OptCount, OptMillis, Origins, Route,
        RoutePath, Secs, Switch,
    },
    declare::{At, section},
    error::KeyPath,
    tls::{Tls, TlsFiles},
};

const MIB: u64 = 1024 * 1024;
/// Longest call timeout anywhere (1 h): a call that long is a hung module.
const MAX_CALL_TIMEOUT_MS: u64 = 3_600_000;
const DAY_SECS: u64 = 86_400;

section! {
    /// `[server]`
    pub struct ServerConfig, table "server", raw RawServer {
        /// The socket is bound once at start (restart needed to change).
        listen: SocketAddr = listen, Addr { default: "127.0.0.1:8080" }, Restart,
            "the address and port to listen on";
        idle_timeout: Duration = idle_timeout_secs,
            Secs { default: 300, min: 1, max: 7 * DAY_SECS }, Live,
            "seconds without a client message before a websocket is closed, at most a week";
        resume_grace: Duration = resume_grace_secs,
            Secs { default: 30, min: 0, max: DAY_SECS }, Live,
            "seconds a closed session can be resumed, at most a day; 0 turns resuming off";
        /// Read per connection: a change applies to connections accepted after it.
        header_timeout: Duration = header_timeout_secs,
            Secs { default: 10, min: 1, max: 300 }, Live,
            "seconds a client has to send a request's headers (also the idle time allowed between requests on a kept-alive connection), at most 300";
        body_timeout: Duration = body_timeout_secs,
            Secs { default: 30, min: 1, max: 3600 }, Live,
            "seconds a client has to send the body of POST /trigger/ or /api/call before it gets 408, at most an hour";
        /// The cap actually used is at most half the process's open-files
        /// limit, so connections that never finish their headers cannot
        /// take the descriptors established clients need.
        max_pending_connections: usize = max_pending_connections,
            Count { default: 512, min: 1, max: 1_000_000 }, Live,
            "connections still sending their request headers; past it the oldest of them is closed";
        allowed_origins: Vec<String> = allowed_origins, Origins {}, Live,
            "other sites (\"https://app.example.com\") whose pages may open websockets with a visitor's cookies; the host's own origin always may; \"*\" lets every site";
        /// Whether the listener speaks TLS is settled at start; the files'
        /// contents are watched and reloaded while it runs.
        tls: Option<TlsFiles> = tls, Tls {}, Restart,
            "the certificate chain and private key (PEM) the listener serves over TLS";
    }
}

/// Who may ask for the host's counters with `{"type":"status"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAccess {
    /// Every client, as high-templar (counters only, nothing personal).
    Everyone,
    /// Users with the `admin` role.
    Admins,
    /// Nobody: every client gets `forbidden`.
    Off,
}

/// The codec of `[gateway] status` (a declaration names its codec's type).
type StatusChoice = Choice<StatusAccess>;

section! {
    /// `[gateway]`: the websocket endpoint's behaviour toward clients.
    pub struct GatewayConfig, table "gateway", raw RawGateway {
        status: StatusAccess = status,
            StatusChoice { default: StatusAccess::Everyone, options: &[
                ("everyone", StatusAccess::Everyone),
                ("admins", StatusAccess::Admins),
                ("off", StatusAccess::Off),
            ] }, Live,
            "who may ask for the host's counters: \"everyone\" (high-templar's behaviour), \"admins\" or \"off\"";
    }
}

section! {
    /// `[limits]`: every input has a bound. Zero is refused everywhere (a
    /// zero queue or rate would make the host refuse everything, which is
    /// never meant).
    pub struct Limits, table "limits", raw RawLimits {
        max_frame_bytes: usize = max_frame_bytes,
            Count { default: 64 * 1024, min: 256, max: 64 * MIB }, Live,
            "largest client websocket message, in bytes";
        max_json_depth: usize = max_json_depth,
            Count { default: 32, min: 1, max: 512 }, Live,
            "deepest JSON nesting in a client frame";
        max_subscriptions: usize = max_subscriptions,
            Count { default: 2048, min: 1, max: 1_000_000 }, Live,
            "rooms one connection may subscribe to";
        /// A client that falls this far behind is closed with code 4008.
        send_queue: usize = send_queue,
            Count { default: 1024, min: 1, max: 1_000_000 }, Live,
            "per-connection outbox, in messages";
        max_connections: usize = max_connections,
            Count { default: 19_000, min: 1, max: 10_000_000 }, Live,
            "websocket connections in total";
        calls_per_second: u32 = calls_per_second,
            Count { default: 10_000, min: 1, max: 10_000_000 }, Live,
            "module calls per second per connection";
        max_calls_in_flight: usize = max_calls_in_flight,
            Count { default: 256, min: 1, max: 1_000_000 }, Live,
            "unanswered calls per connection";
        call_timeout: Duration = call_timeout_ms,
            Millis { default: 10_000, min: 1, max: MAX_CALL_TIMEOUT_MS }, Live,
            "module call timeout in milliseconds, at most 1 hour";
        max_params_bytes: usize = max_params_bytes,
            Count { default: modhost_plugin_api::abi::DEFAULT_MAX_PARAMS_BYTES as u64, min: 64, max: 64 * MIB }, Live,
            "serialized params of one call, in bytes";
        module_queue: usize = module_queue,
            Count { default: 1024, min: 1, max: 1_000_000 }, Live,
            "calls waiting for one module instance";
        resume_buffer: usize = resume_buffer,
            Count { default: 1024, min: 1, max: 1_000_000 }, Live,
            "messages kept for a disconnected session";
        /// One limit for every publisher (module, `POST /trigger/`, AMQP):
        /// each named room is walked in the index, so the count bounds the
        /// work one publish does under the fan-out lock.
        max_rooms_per_publish: usize = max_rooms_per_publish,
            Count { default: 64, min: 1, max: 10_000 }, Live,
            "rooms one publish may name (module, /trigger/, AMQP)";
    }
}

section! {
    /// `[modules]`
    pub struct ModulesConfig, table "modules", raw RawModulesSettings {
        /// The file watcher is set up on this folder at start.
        dir: PathBuf = dir, Folder { default: "plugins" }, Restart,
            "where signed `*.so` + `*.so.sig` are dropped";
        verify_keys: Vec<PathBuf> = verify_keys, Folders { default: "verify_keys" }, Live,
            "folders of `<module>.pub` files";
        /// Rollback high-water marks are opened at start.
        state_dir: PathBuf = state_dir, Folder { default: ".modhost/state" }, Restart,
            "host state, such as rollback high-water marks";
        allow_rollback: bool = allow_rollback, Flag { default: false }, Live,
            "accept a `seq` lower than one seen before";
    }
    extra {
        /// `[modules.<name>]` tables.
        settings: BTreeMap<String, ModuleSettings>,
    }
}

section! {
    /// One `[modules.<name>]` table: the keys the host reads itself, and
    /// the rest for the module.
    pub struct ModuleSettings, table "modules.<name>", raw RawModuleHost {
        /// Not passed to the module.
        enabled: bool = enabled, Switch { default: true, on: "enabled", off: "disabled" }, Live,
            "false keeps the module from loading";
        /// Overrides `[limits] call_timeout_ms`.
        call_timeout: Option<Duration> = call_timeout_ms,
            OptMillis { min: 1, max: MAX_CALL_TIMEOUT_MS }, Live,
            "this module's call timeout in milliseconds, at most 1 hour; overrides limits.call_timeout_ms";
        /// The module's publish budget; `None` is the host default (50,000).
        publishes_per_second: Option<u32> = publishes_per_second,
            OptCount { min: 1, max: 10_000_000 }, Live,
            "how many messages this module may publish per second, at most 10000000";
    }
    extra {
        /// Every other key, as JSON, handed to the module untouched.
        config: serde_json::Value,
    }
}

section! {
    /// `[diagnostics]`
    pub struct Diagnostics, table "diagnostics", raw RawDiagnostics {
        /// Serve a websocket echo endpoint on the same stack as `/ws/` (for
        /// conformance testing). Off by default. The HTTP router is built at
        /// start.
        ws_echo_path: Option<String> = ws_echo_path, RoutePath {}, Restart,
            "a websocket echo endpoint's path";
    }
}

/// How `/module` connections prove each frame is fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMode {
    /// Each `resolve_id` once per module within the replay window: what
    /// sse-platform's unchanged client passes.
    Off,
    /// Also the connection's host challenge signed into every frame, so a
    /// frame from another connection is refused at any age.
    Required,
}

/// The codec of `[external] challenge`.
type ChallengeChoice = Choice<ChallengeMode>;

section! {
    /// `[external]`: modules in any language on the `/module` websocket
    /// (sse-platform's module protocol, signed frames).
    pub struct ExternalConfig, table "external", raw RawExternal {
        /// The HTTP router is built at start.
        enabled: bool = enabled, Flag { default: false }, Restart,
            "serve the external-module websocket";
        /// The HTTP router is built at start.
        path: String = path, Route { default: "/module" }, Restart,
            "the external-module websocket's path (its host key is served at <path>/key)";
        templates: PathBuf = templates, Folder { default: "templates" }, Live,
            "the folder get_template and post_template read and write";
        max_template_bytes: usize = max_template_bytes,
            Count { default: 256 * 1024, min: 1, max: 16 * MIB }, Live,
            "largest template get_template or post_template handles, in bytes";
        max_body_bytes: usize = max_body_bytes,
            Count { default: 4096, min: 64, max: MIB }, Live,
            "largest JSON body of the upgrade request (sse-platform sends its module name there), in bytes";
        max_frame_bytes: usize = max_frame_bytes,
            Count { default: 1024 * 1024, min: 1024, max: 64 * MIB }, Live,
            "largest frame a module may send, in bytes";
        max_pending_calls: usize = max_pending_calls,
            Count { default: 1024, min: 1, max: 1_000_000 }, Live,
            "calls one external module may have unanswered; past it new calls are refused";
        replay_window: Duration = replay_window_secs,
            Secs { default: 300, min: 1, max: DAY_SECS }, Live,
            "seconds a module's resolve_id is remembered (a repeat within it is refused as a replay)";
        replay_max_ids: usize = replay_max_ids,
            Count { default: 262_144, min: 1024, max: 100_000_000 }, Live,
            "resolve_ids remembered per module (about 40 bytes each); past it the oldest are forgotten early";
        grace: Duration = grace_secs,
            Secs { default: 30, min: 0, max: 3600 }, Live,
            "seconds a disconnected module keeps its name and commands for a reconnect";
        challenge: ChallengeMode = challenge,
            ChallengeChoice { default: ChallengeMode::Off, options: &[
                ("off", ChallengeMode::Off),
                ("required", ChallengeMode::Required),
            ] }, Live,
            "\"off\" (sse-platform's clients) or \"required\": every frame carries the connection's signed host challenge";
    }
}

impl Default for ExternalConfig {
    fn default() -> Self {
        defaults(|at| Self::read(RawExternal::default(), at))
    }
}

/// Every declared table, for the restart list and the config.toml test.
#[cfg(test)]
pub(crate) const TABLES: &[(&str, &[super::declare::Decl])] = &[
    ("server", ServerConfig::DECLS),
    ("gateway", GatewayConfig::DECLS),
    ("limits", Limits::DECLS),
    ("modules", ModulesConfig::DECLS),
    ("modules.<name>", ModuleSettings::DECLS),
    ("diagnostics", Diagnostics::DECLS),
    ("external", ExternalConfig::DECLS),
    ("log", LogConfig::DECLS),
];

/// The declared defaults of a table without paths to resolve.
fn defaults<T>(read: impl FnOnce(&At<'_>) -> Result<T, super::error::Problem>) -> T {
    read(&At::table(KeyPath::default(), std::path::Path::new("")))
        .expect("declared defaults are within their bounds (checked by a unit test)")
}

impl Default for Limits {
    fn default() -> Self {
        defaults(|at| Self::read(RawLimits::default(), at))
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        defaults(|at| Self::read(RawGateway::default(), at))
    }
}

impl Default for Diagnostics {
    fn default() -> Self {
        defaults(|at| Self::read(RawDiagnostics::default(), at))
    }
}

impl ModulesConfig {
    /// Settings for `module` (defaults when it has no table).
    pub fn settings_for(&self, module: &str) -> ModuleSettings {
        self.settings
            .get(module)
            .cloned()
            .unwrap_or_else(ModuleSettings::default)
    }
}

impl Default for ModuleSettings {
    fn default() -> Self {
        let mut settings = defaults(|at| Self::read(RawModuleHost::default(), at));
        settings.config = serde_json::Value::Object(serde_json::Map::new());
        settings
    }
}

/// How `modhost run` writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event, coloured only on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The codec of `[log] format`.
type LogFormatChoice = Choice<LogFormat>;

section! {
    /// `[log]`: the host's own log lines (what they say is `MODHOST_LOG`'s).
    pub struct LogConfig, table "log", raw RawLog {
        /// Logging is set up once, before the host starts.
        format: LogFormat = format,
            LogFormatChoice { default: LogFormat::Text, options: &[
                ("text", LogFormat::Text),
                ("json", LogFormat::Json),
            ] }, Restart,
            "\"text\" (coloured only on a terminal) or \"json\" (one object per line)";
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        defaults(|at| Self::read(RawLog::default(), at))
    }
}
