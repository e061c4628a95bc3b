//! `echo`: modhost's smallest module, and the one the integration tests lean
//! on. Each command exercises one path through the host:
//!
//! | command | params | what it proves |
//! |---|---|---|
//! | `echo` | any | params reach the module and come back unchanged |
//! | `publish` | `rooms`, `data` | a module can publish into rooms |
//! | `count` | `n` (1..=100000), streams | stream items arrive in order, the last with `done` |
//! | `whoami` | none | the caller identity is the host's stamp, whatever params say |
//! | `notify` | `user`, `data` | a module can push to a user's sessions |
//! | `sleep` | `ms` (≤ 600000), admins only | call timeouts (it blocks its own thread) |
//! | `fire` | any, no reply | fire-and-forget calls are acknowledged, not answered |
//! | `config` | none, admins only | the live `[modules.echo]` table reaches the module |
//! | `events` | none, admins only | host events (`user_login` …) reach `on_event`: the last [`MAX_EVENTS`] |
//!
//! echo does what it is asked for its caller; the host bounds that. For a
//! user, `publish` reaches only rooms the user may subscribe to
//! (`allowed_rooms`), and `notify` only the user's own sessions unless the
//! caller is an admin: the host checks both on every module's publishes
//! and pushes. `sleep` is admin-only, since it blocks echo for everyone
//! while it lasts.
//!
//! # Layout
//! - [`Command`]: one call, parsed and validated without a host
//!   (`Command::parse`), so the logic is unit-tested directly
//! - [`count_items`], [`caller_json`]: the pure parts of `count` and `whoami`
//! - [`Echo`]: the thin `Module` impl that applies a `Command` through `Host`
//! - `tests.rs`: unit tests for the logic, plus the `Module` impl driven
//!   through `modhost-plugin-testkit`

use std::time::Duration;

use modhost_plugin_api::{
    Call, Caller, CallerKind, CommandSpec, ErrorCode, Host, Manifest, Module, ModuleError,
    export_module,
};
use serde_json::{Value, json};

#[cfg(test)]
mod tests;

/// Largest `n` for `count`: enough for stream tests, small enough that a
/// typo cannot keep the module busy for minutes.
pub const MAX_COUNT: u64 = 100_000;

/// Longest `sleep`, in milliseconds (10 minutes; any sane call timeout is
/// shorter).
pub const MAX_SLEEP_MS: u64 = 600_000;

/// Events `events` remembers, newest last; older ones are forgotten.
pub const MAX_EVENTS: usize = 64;

/// One call to the echo module, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Return the params unchanged.
    Echo(Value),
    /// Publish `data` to `rooms` (a JSON array of room objects).
    Publish {
        /// The rooms.
        rooms: Value,
        /// What to publish.
        data: Value,
    },
    /// Stream `{"i": 1}` … `{"i": n}`.
    Count(u64),
    /// Report the stamped caller.
    Whoami,
    /// Push `data` to every session of `user`.
    Notify {
        /// The user id.
        user: String,
        /// What to push.
        data: Value,
    },
    /// Block this module's thread for `ms` milliseconds.
    Sleep(u64),
    /// Log the params at debug level; nobody waits for a result.
    Fire(Value),
    /// Return the module's config table.
    Config,
    /// Return the events received, oldest first.
    Events,
}

impl Command {
    /// Parses and validates `call`. Params other than the named ones are
    /// ignored; in particular nothing in params can change who is calling.
    pub fn parse(call: &Call) -> Result<Self, ModuleError> {
        Ok(match call.command.as_str() {
            "echo" => Command::Echo(call.params.clone()),
            "publish" => {
                let rooms: Value = call.param("rooms")?;
                if !rooms.is_array() {
                    return Err(ModuleError::bad_params(
                        "param `rooms` must be an array of room objects",
                    ));
                }
                Command::Publish {
                    rooms,
                    data: call.param("data")?,
                }
            }
            "count" => {
                let n: u64 = call.param("n")?;
                if !(1..=MAX_COUNT).contains(&n) {
                    return Err(ModuleError::bad_params(format!(
                        "param `n` must be between 1 and {MAX_COUNT}, got {n}"
                    )));
                }
                Command::Count(n)
            }
            "whoami" => Command::Whoami,
            "notify" => {
                let user: String = call.param("user")?;
                if user.is_empty() {
                    return Err(ModuleError::bad_params("param `user` must not be empty"));
                }
                Command::Notify {
                    user,
                    data: call.param("data")?,
                }
            }
            "sleep" => {
                let ms: u64 = call.param("ms")?;
                if ms > MAX_SLEEP_MS {
                    return Err(ModuleError::bad_params(format!(
                        "param `ms` must be at most {MAX_SLEEP_MS}, got {ms}"
                    )));
                }
                Command::Sleep(ms)
            }
            "fire" => Command::Fire(call.params.clone()),
            "config" => Command::Config,
            "events" => Command::Events,
            other => {
                // The broker checks commands against the manifest, so this
                // only happens if the two disagree.
                return Err(ModuleError {
                    code: ErrorCode::UnknownCommand,
                    message: format!("echo has no command `{other}`"),
                });
            }
        })
    }
}

/// The stream items `count` emits before its last one: `{"i": 1}` …
/// `{"i": n-1}`. The handler's result, `{"i": n, "done": true}`, ends it.
pub fn count_items(n: u64) -> impl Iterator<Item = Value> {
    (1..n).map(|i| json!({ "i": i }))
}

/// The last item of `count n`.
pub fn count_last(n: u64) -> Value {
    json!({ "i": n, "done": true })
}

/// The caller as `whoami` reports it.
pub fn caller_json(caller: &Caller) -> Value {
    let kind = match caller.kind {
        CallerKind::User => "user",
        CallerKind::Module => "module",
        CallerKind::Operator => "operator",
    };
    json!({
        "kind": kind,
        "user": caller.user.as_str(),
        "session": caller.session.as_str(),
        "roles": caller.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "module": caller.module.as_str(),
    })
}

/// The echo module. Its only state is the last events it received, for
/// `events` (lost when the instance is rebuilt).
#[derive(Default)]
pub struct Echo {
    events: std::collections::VecDeque<Value>,
}

impl Echo {
    /// Remembers event `name`, forgetting the oldest past [`MAX_EVENTS`].
    pub fn record(&mut self, name: &str, data: &Value) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(json!({ "name": name, "data": data }));
    }
}

impl Module for Echo {
    // `echo` only copies its params back; every other command publishes, pushes, streams or sleeps.
    const NON_BLOCKING: &'static [&'static str] = &["echo"];

    fn manifest() -> Manifest {
        Manifest::new("echo", env!("CARGO_PKG_VERSION"))
            .description("Echoes params, publishes, streams, and reports who is calling")
            .command(CommandSpec::new("echo").description("Returns the params unchanged"))
            .command(
                CommandSpec::new("publish")
                    .param("rooms")
                    .param("data")
                    .description("Publishes data to rooms; returns {delivered}"),
            )
            .command(
                CommandSpec::new("count")
                    .param("n")
                    .streams()
                    .description("Streams {i: 1} … {i: n} (n ≤ 100000), the last with done: true"),
            )
            .command(
                CommandSpec::new("whoami")
                    .description("Returns the caller identity the host stamped"),
            )
            .command(
                CommandSpec::new("notify")
                    .param("user")
                    .param("data")
                    .description("Pushes data to every session of user; returns {delivered}"),
            )
            .command(
                CommandSpec::new("sleep")
                    .param("ms")
                    .min_role("admin")
                    .description(
                        "Blocks the module for ms milliseconds (≤ 600000; admins only: it holds up every caller of echo)",
                    ),
            )
            .command(
                CommandSpec::new("fire")
                    .no_reply()
                    .description("Logs its params; no reply"),
            )
            .command(CommandSpec::new("config").min_role("admin").description(
                "Returns the module's config table (admins only: it may hold secrets)",
            ))
            .command(CommandSpec::new("events").min_role("admin").description(
                "Returns the last host events received, oldest first (admins only: they name users)",
            ))
    }

    fn on_load(_host: &Host) -> Result<Self, String> {
        Ok(Echo::default())
    }

    fn on_event(&mut self, name: &str, data: &Value, _host: &Host) {
        self.record(name, data);
    }

    fn handle(&mut self, call: &Call, host: &Host) -> Result<Value, ModuleError> {
        match Command::parse(call)? {
            Command::Echo(params) => Ok(params),
            Command::Publish { rooms, data } => {
                let delivered = host.publish(&rooms, &data)?;
                Ok(json!({ "delivered": delivered }))
            }
            Command::Count(n) => {
                for item in count_items(n) {
                    host.emit(call, &item)?;
                }
                Ok(count_last(n))
            }
            Command::Whoami => Ok(caller_json(&call.caller)),
            Command::Notify { user, data } => {
                let delivered = host.send_to_user(&user, &data)?;
                Ok(json!({ "delivered": delivered }))
            }
            Command::Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(json!({ "slept": ms }))
            }
            Command::Fire(params) => {
                host.debug(format_args!("fire from {:?}: {params}", call.user()));
                Ok(Value::Null)
            }
            Command::Config => Ok(host.config().clone()),
            Command::Events => Ok(Value::Array(self.events.iter().cloned().collect())),
        }
    }
}

export_module!(Echo);
