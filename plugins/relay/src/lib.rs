//! `relay`: calls a command of another module and hands back its result,
//! to exercise module-to-module calls.
//!
//! | command | params | result |
//! |---|---|---|
//! | `relay` | `module`, `command`, `params` (object, optional: `{}`) | `{"result": <the callee's result>}` |
//!
//! The callee sees `relay` as the calling module (kind `module`), with the
//! user, session and roles of whoever called relay: the host stamps them,
//! relay cannot change them, and the callee's role checks apply to them, so
//! a user reaches through relay only what they could call directly. A
//! failed call comes back with the callee's error code and message
//! (`unknown-module`, `forbidden`, `module-error`, `module-panicked`, …).
//!
//! Relay refuses to call itself: the call would wait on the thread that has
//! to answer it and end in `module-timeout`.
//!
//! Config: `[modules.relay] allow = ["echo", "divide"]` limits which modules
//! it may call; without `allow`, any module.
//!
//! # Layout
//! - [`Relay`]: one request, validated without a host ([`Relay::parse`])
//! - [`Allow`]: the `allow` list from config
//! - [`RelayModule`]: the thin `Module` impl that makes the call
//! - `tests.rs`: unit tests, plus the `Module` impl through the testkit,
//!   whose host answers the module's calls

use modhost_plugin_api::{
    Call, CommandSpec, ErrorCode, Host, Manifest, Module, ModuleError, export_module,
};
use serde_json::{Map, Value, json};

#[cfg(test)]
mod tests;

/// Which modules relay may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Any module (no `allow` in config).
    Any,
    /// Only these.
    Only(Vec<String>),
}

impl Allow {
    /// Reads `allow` from the module's config table.
    pub fn from_config(config: &Value) -> Result<Self, String> {
        match config.get("allow") {
            None | Some(Value::Null) => Ok(Allow::Any),
            Some(Value::Array(names)) => names
                .iter()
                .map(|name| {
                    name.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("allow must list module names, found {name}"))
                })
                .collect::<Result<_, _>>()
                .map(Allow::Only),
            Some(other) => Err(format!(
                "allow must be an array of module names, got {other}"
            )),
        }
    }

    fn permits(&self, module: &str) -> bool {
        match self {
            Allow::Any => true,
            Allow::Only(names) => names.iter().any(|n| n == module),
        }
    }
}

/// One `relay` call, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Relay {
    /// The module to call.
    pub module: String,
    /// Its command.
    pub command: String,
    /// The params object to pass.
    pub params: Value,
}

impl Relay {
    /// Validates `call`'s params. `own_name` is relay's own module name,
    /// which it must not call.
    pub fn parse(call: &Call, own_name: &str, allow: &Allow) -> Result<Self, ModuleError> {
        let module: String = call.param("module")?;
        let command: String = call.param("command")?;
        if module.is_empty() || command.is_empty() {
            return Err(ModuleError::bad_params(
                "params `module` and `command` must not be empty",
            ));
        }
        let params = match call.params.get("params") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(params @ Value::Object(_)) => params.clone(),
            Some(other) => {
                return Err(ModuleError::bad_params(format!(
                    "param `params` must be an object, got {other}"
                )));
            }
        };
        if module == own_name {
            return Err(ModuleError::bad_params(format!(
                "{own_name} cannot relay to itself: the call would wait on its own thread"
            )));
        }
        if !allow.permits(&module) {
            return Err(ModuleError::forbidden(format!(
                "{own_name} may not call module {module}"
            )));
        }
        Ok(Relay {
            module,
            command,
            params,
        })
    }
}

/// The relay module.
pub struct RelayModule {
    allow: Allow,
}

impl Module for RelayModule {
    fn manifest() -> Manifest {
        Manifest::new("relay", env!("CARGO_PKG_VERSION"))
            .description("Calls another module's command and returns its result")
            .command(
                CommandSpec::new("relay")
                    .param("module")
                    .param("command")
                    .description("Calls module.command(params); returns {result}"),
            )
    }

    fn on_load(host: &Host) -> Result<Self, String> {
        Ok(RelayModule {
            allow: Allow::from_config(host.config())?,
        })
    }

    fn handle(&mut self, call: &Call, host: &Host) -> Result<Value, ModuleError> {
        match call.command.as_str() {
            "relay" => {
                let relay = Relay::parse(call, host.module_name(), &self.allow)?;
                host.debug(format_args!(
                    "relaying to {}.{}",
                    relay.module, relay.command
                ));
                let result = host.call(&relay.module, &relay.command, &relay.params)?;
                Ok(json!({ "result": result }))
            }
            other => Err(ModuleError {
                code: ErrorCode::UnknownCommand,
                message: format!("relay has no command `{other}`"),
            }),
        }
    }
}

export_module!(RelayModule);
