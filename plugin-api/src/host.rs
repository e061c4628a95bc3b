//! The [`Host`] handle: the host as a module author sees it.
//!
//! It wraps the FFI-safe `HostContext` the host passes to `start` and turns
//! the host's answers into [`ModuleError`]s, so an author's `?` works on
//! them and the wire types stay out of the author's API.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    fmt::Display,
    time::Duration,
};

use abi_stable::{
    external_types::crossbeam_channel::RReceiver,
    std_types::{RResult, RString},
};
use serde_json::Value;

use crate::{
    abi::{FromModule, HostContext, ToModule},
    call::Call,
    error::ModuleError,
    types::{ErrorCode, LogLevel},
};

/// How long [`Host::call`] waits at most. The host answers a call that
/// outlives its own timeout with `module-timeout` well before this.
const CALL_WAIT_LIMIT: Duration = Duration::from_secs(120);

/// A module's handle to the host: configuration, logging, publishing, calls
/// to other modules, and stream items.
pub struct Host {
    ctx: HostContext,
    config: Value,
    deferred: RefCell<VecDeque<ToModule>>,
    next_call_id: Cell<u64>,
    /// Set while a call runs on the host's thread (see `abi::InlineCalls`):
    /// the services that act for a caller are refused then, since the
    /// host cannot tell whose call a callback from its own thread is for.
    inline: Cell<bool>,
}

impl Host {
    pub(crate) fn new(ctx: HostContext) -> Self {
        let config = serde_json::from_str(ctx.config.as_str()).unwrap_or(Value::Null);
        Self {
            ctx,
            config,
            deferred: RefCell::new(VecDeque::new()),
            next_call_id: Cell::new(1),
            inline: Cell::new(false),
        }
    }

    /// The module's name.
    pub fn module_name(&self) -> &str {
        self.ctx.module.as_str()
    }

    /// Which build of this module is running (1, 2, … across hot reloads).
    pub fn generation(&self) -> u64 {
        self.ctx.generation
    }

    /// The module's `[modules.<name>]` table from config.toml.
    pub fn config(&self) -> &Value {
        &self.config
    }

    pub(crate) fn set_config(&mut self, text: &str) {
        self.config = serde_json::from_str(text).unwrap_or(Value::Null);
    }

    /// Writes a line to the host's log, attributed to this module.
    pub fn log(&self, level: LogLevel, message: impl Display) {
        if level > self.ctx.log_level {
            return;
        }
        let message = RString::from(message.to_string());
        let _ = self.ctx.sink.send(FromModule::Log { level, message });
    }

    /// Logs at error level.
    pub fn error(&self, message: impl Display) {
        self.log(LogLevel::Error, message)
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl Display) {
        self.log(LogLevel::Warn, message)
    }

    /// Logs at info level.
    pub fn info(&self, message: impl Display) {
        self.log(LogLevel::Info, message)
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl Display) {
        self.log(LogLevel::Debug, message)
    }

    /// Publishes `data` to every subscriber of the matching `rooms` (a JSON
    /// array of room objects). Returns how many subscriptions it reached.
    /// While handling a user's call, every room must be one that user may
    /// subscribe to (else `forbidden`, nothing published); the host also
    /// bounds the number of rooms (`too-large`).
    pub fn publish(&self, rooms: &Value, data: &Value) -> Result<u64, ModuleError> {
        self.not_inline("publish")?;
        self.ctx
            .sink
            .send(FromModule::Publish {
                rooms: rooms.to_string().into(),
                data: data.to_string().into(),
            })
            .into_result()
            .map_err(ModuleError::from)
    }

    /// Pushes `data` to every session of `user` that speaks the `modhost.v1`
    /// websocket protocol, as `{"type":"push","module":…,"data":…}` (clients
    /// of the high-templar dialect take no pushes). Returns how many
    /// sessions it reached. While handling a user's call, only that user
    /// may be pushed to, unless the caller is an admin or the command is
    /// admin-only (else `forbidden`).
    pub fn send_to_user(&self, user: &str, data: &Value) -> Result<u64, ModuleError> {
        self.not_inline("send_to_user")?;
        self.ctx
            .sink
            .send(FromModule::SendToUser {
                user: user.into(),
                data: data.to_string().into(),
            })
            .into_result()
            .map_err(ModuleError::from)
    }

    /// Sends one item of a streaming reply to `call`'s caller. The value the
    /// handler returns is the stream's last item.
    pub fn emit(&self, call: &Call, item: &Value) -> Result<(), ModuleError> {
        self.not_inline("emit")?;
        self.ctx
            .sink
            .send(FromModule::Reply {
                id: call.id,
                result: item.to_string().into(),
                done: false,
            })
            .into_result()
            .map(|_| ())
            .map_err(ModuleError::from)
    }

    /// Calls `command` of `module` and waits for its result. The callee sees
    /// this module as the calling module, with the user and roles of the
    /// call this module is handling (none outside a call); the callee's
    /// role checks apply to those. Calls that form a cycle (A calls B which
    /// calls A) end in `module-timeout`: this module's thread is waiting.
    pub fn call(&self, module: &str, command: &str, params: &Value) -> Result<Value, ModuleError> {
        self.not_inline("call")?;
        let id = self.next_call_id.get();
        self.next_call_id.set(id + 1);
        let sent = self.ctx.sink.send(FromModule::Call {
            id,
            module: module.into(),
            command: command.into(),
            params: params.to_string().into(),
        });
        if let RResult::RErr(failure) = sent {
            return Err(failure.into());
        }
        loop {
            match self.ctx.inbox.recv_timeout(CALL_WAIT_LIMIT) {
                Ok(ToModule::CallResult(result)) if result.id == id => {
                    return match result.outcome {
                        RResult::ROk(text) => serde_json::from_str(text.as_str())
                            .map_err(|e| ModuleError::new(format!("invalid JSON result: {e}"))),
                        RResult::RErr(failure) => Err(failure.into()),
                    };
                }
                // A late answer to an earlier call that already timed out here.
                Ok(ToModule::CallResult(_)) => {}
                // Anything else waits until the current handler returns.
                Ok(other) => self.deferred.borrow_mut().push_back(other),
                Err(error) if error.is_timeout() => {
                    return Err(ModuleError {
                        code: ErrorCode::ModuleTimeout,
                        message: format!("{module}.{command} did not answer in time"),
                    });
                }
                Err(_) => {
                    return Err(ModuleError {
                        code: ErrorCode::ModuleUnavailable,
                        message: "the host is shutting this module down".into(),
                    });
                }
            }
        }
    }

    /// Refuses a service during a call run on the host's thread.
    fn not_inline(&self, service: &str) -> Result<(), ModuleError> {
        if self.inline.get() {
            return Err(ModuleError::new(format!(
                "`{service}` is not available in a command declared in `Module::NON_BLOCKING`: its calls run on the host's thread; remove the command from that list to use it"
            )));
        }
        Ok(())
    }

    /// Marks the calls handled from now on as run on the host's thread.
    pub(crate) fn set_inline(&self, inline: bool) {
        self.inline.set(inline);
    }

    /// A message `Host::call` put aside while it waited for its answer.
    pub(crate) fn take_deferred(&self) -> Option<ToModule> {
        self.deferred.borrow_mut().pop_front()
    }

    /// The inbox, for the instance thread to wait on without holding the
    /// lock inline calls take.
    pub(crate) fn inbox(&self) -> RReceiver<ToModule> {
        self.ctx.inbox.clone()
    }

    pub(crate) fn send(&self, msg: FromModule) {
        let _ = self.ctx.sink.send(msg);
    }
}
