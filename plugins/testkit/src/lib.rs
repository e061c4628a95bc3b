//! Runs one module in-process, through the same root module, runner and
//! call validation the host drives, so a module's `Module` impl (not only
//! its pure logic) can be tested without the host, a socket or `dlopen`.
//!
//! `plugin-api` keeps `Host::new` private, so a test cannot hand a `Host` to
//! `Module::handle` itself. What it can do is what the host does: take the
//! module's root module (`ModuleRoot_Ref::of::<M>()`, the one
//! `export_module!(M)` exports), and call `start` with a `HostContext` whose
//! sink this crate implements. Every call is first checked against the
//! manifest by the host's own `check_call` (unknown command, role, size,
//! required params), then takes the real path: `Call::from_msg`,
//! `catch_unwind`, `Host::emit`, `Host::publish`, `Host::call`.
//!
//! ```ignore
//! let mut module = TestHost::of::<Echo>().start()?;
//! let outcome = module.call("echo", json!({"a": 1}));
//! assert_eq!(outcome.result, Ok(json!({"a": 1})));
//! ```
//!
//! # Layout
//! - [`TestHost`]: builder (config, deliveries per publish, module-to-module
//!   call answers, params limit) that starts the instance on a thread
//! - [`Running`]: validates and sends calls, config changes and shutdown;
//!   collects what the module sent back into an [`Outcome`]
//! - [`Sent`]: one thing the module sent besides its reply
//! - `Sink`: the `HostSink` that records all of it
//! - `tests.rs`: the testkit's own tests, with a module defined inline

use std::{
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use modhost_plugin_api::{
    Caller, CallerKind, ErrorCode, LogLevel, Manifest, Module, ModuleError,
    abi::{
        CallMsg, CallResultMsg, DEFAULT_MAX_PARAMS_BYTES, EventMsg, Failure, FromModule,
        HostContext, HostSink, HostSink_TO, ModuleRoot_Ref, ToModule, check_call,
    },
    abi_stable::{
        external_types::crossbeam_channel::{self, RSender},
        sabi_trait::TD_Opaque,
        std_types::{RArc, RResult, RString, RVec},
    },
};
use serde_json::Value;

/// Why an instance's `run` returned; what [`Running::shutdown`] reports.
pub use modhost_plugin_api::abi::RunExit;

#[cfg(test)]
mod tests;

/// How long a test waits for the module before it fails instead of hanging.
const WAIT: Duration = Duration::from_secs(30);

/// Inbox capacity; a test sends one message at a time, plus answers to the
/// module's own calls.
const INBOX: usize = 64;

/// Answers a module-to-module call: `(module, command, params)`.
type Responder = dyn Fn(&str, &str, &Value) -> Result<Value, ModuleError> + Send + Sync;

/// Builds and starts one module instance.
pub struct TestHost {
    root: ModuleRoot_Ref,
    config: Value,
    deliveries: u64,
    responder: Arc<Responder>,
    log_level: LogLevel,
    max_params_bytes: usize,
}

impl TestHost {
    /// A host for module `M`, with config `{}` and the host's default
    /// params limit.
    pub fn of<M: Module>() -> Self {
        Self {
            root: ModuleRoot_Ref::of::<M>(),
            config: Value::Object(Default::default()),
            deliveries: 1,
            responder: Arc::new(|module: &str, _: &str, _: &Value| {
                Err(failure(
                    ErrorCode::UnknownModule,
                    &format!("no module {module}"),
                ))
            }),
            log_level: LogLevel::Trace,
            max_params_bytes: DEFAULT_MAX_PARAMS_BYTES,
        }
    }

    /// The module's `[modules.<name>]` table.
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// What every `publish` and `send_to_user` reports as delivered.
    pub fn deliveries(mut self, n: u64) -> Self {
        self.deliveries = n;
        self
    }

    /// How the module's `Host::call`s are answered (default: `unknown-module`).
    pub fn on_call(
        mut self,
        responder: impl Fn(&str, &str, &Value) -> Result<Value, ModuleError> + Send + Sync + 'static,
    ) -> Self {
        self.responder = Arc::new(responder);
        self
    }

    /// Calls with params longer than this (serialized) are refused with
    /// `too-large`, as the host's `limits.max_params_bytes` does.
    pub fn max_params_bytes(mut self, bytes: usize) -> Self {
        self.max_params_bytes = bytes;
        self
    }

    /// Starts an instance on its own thread. `Err` carries a panic in
    /// `manifest()` or `on_load`'s refusal.
    pub fn start(self) -> Result<Running, String> {
        let root = self.root;
        let manifest = match root.manifest()() {
            RResult::ROk(manifest) => manifest,
            RResult::RErr(reason) => return Err(reason.into_string()),
        };
        let (inbox, receiver) = crossbeam_channel::bounded(INBOX);
        let (sent_tx, sent) = mpsc::channel();
        let sink = Sink {
            sent: Mutex::new(sent_tx),
            inbox: inbox.clone(),
            responder: self.responder,
            deliveries: self.deliveries,
        };
        let ctx = HostContext {
            module: manifest.name.clone(),
            generation: 1,
            config: self.config.to_string().into(),
            log_level: self.log_level,
            sink: HostSink_TO::from_ptr(RArc::new(sink), TD_Opaque),
            inbox: receiver,
        };
        let mut instance = match root.start()(ctx) {
            RResult::ROk(instance) => instance,
            RResult::RErr(reason) => return Err(reason.into_string()),
        };
        let thread = std::thread::spawn(move || instance.run());
        Ok(Running {
            manifest,
            max_params_bytes: self.max_params_bytes,
            inbox,
            sent,
            thread: Some(thread),
            next_id: 1,
        })
    }
}

/// A running instance.
pub struct Running {
    manifest: Manifest,
    max_params_bytes: usize,
    inbox: RSender<ToModule>,
    sent: mpsc::Receiver<FromModule>,
    thread: Option<JoinHandle<RunExit>>,
    next_id: u64,
}

/// What one call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Stream items sent with `Host::emit`, in order.
    pub items: Vec<Value>,
    /// The final result, or the error the call ended with.
    pub result: Result<Value, ModuleError>,
    /// Everything else the module sent while handling the call.
    pub sent: Vec<Sent>,
}

impl Outcome {
    /// The result; panics with the failure if the call failed.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        match &self.result {
            Ok(value) => value,
            Err(failure) => panic!("call failed: {}: {}", failure.code, failure.message),
        }
    }

    /// The failure; panics if the call succeeded.
    #[track_caller]
    pub fn err(&self) -> &ModuleError {
        match &self.result {
            Ok(value) => panic!("call succeeded with {value}"),
            Err(failure) => failure,
        }
    }

    /// The module's log lines, without their levels.
    pub fn logs(&self) -> Vec<&str> {
        self.sent
            .iter()
            .filter_map(|s| match s {
                Sent::Log(_, line) => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Something a module sent besides replies.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// `Host::publish(rooms, data)`.
    Publish(Value, Value),
    /// `Host::send_to_user(user, data)`.
    SendToUser(String, Value),
    /// `Host::call(module, command, params)`.
    Call(String, String, Value),
    /// A log line.
    Log(LogLevel, String),
}

impl Running {
    /// Calls `command` as user `alice` (no roles, session `s1`).
    pub fn call(&mut self, command: &str, params: Value) -> Outcome {
        self.call_as(user("alice", &[]), command, params)
    }

    /// Calls `command` as `caller` and collects everything up to its last
    /// reply or its error. A call the host would refuse (see `check_call`)
    /// never reaches the module: its outcome is the host's refusal.
    #[track_caller]
    pub fn call_as(&mut self, caller: Caller, command: &str, params: Value) -> Outcome {
        let mut outcome = Outcome {
            items: Vec::new(),
            result: Ok(Value::Null),
            sent: Vec::new(),
        };
        let params = params.to_string();
        if let Err(refusal) = check_call(
            &self.manifest,
            command,
            &params,
            &caller,
            self.max_params_bytes,
        ) {
            outcome.result = Err(refusal.into());
            return outcome;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.send(ToModule::Call(CallMsg {
            id,
            command: command.into(),
            params: params.into(),
            caller,
        }));
        loop {
            match self.next_sent() {
                FromModule::Reply {
                    id: got,
                    result,
                    done,
                } if got == id => {
                    let value = parse(&result);
                    if done {
                        outcome.result = Ok(value);
                        return outcome;
                    }
                    outcome.items.push(value);
                }
                FromModule::Error { id: got, failure } if got == id => {
                    outcome.result = Err(failure.into());
                    return outcome;
                }
                FromModule::Reply { id: got, .. } | FromModule::Error { id: got, .. } => {
                    panic!("reply for call {got} while waiting for call {id}")
                }
                other => outcome.sent.push(Sent::from(other)),
            }
        }
    }

    /// Sends the module a new config table. Messages are handled in order,
    /// so the next call sees it.
    pub fn reconfigure(&mut self, config: Value) {
        self.send(ToModule::Reconfigure(config.to_string().into()));
    }

    /// Sends the module event `name` with `data`, as the host does (for
    /// example `user_logout`). Messages are handled in order, so the next
    /// call sees it.
    pub fn event(&mut self, name: &str, data: Value) {
        self.send(ToModule::Event(EventMsg {
            name: name.into(),
            data: data.to_string().into(),
        }));
    }

    /// Sends `Shutdown` and waits for `run` to return.
    pub fn shutdown(mut self) -> RunExit {
        self.send(ToModule::Shutdown);
        let thread = self.thread.take().expect("joined once");
        let deadline = std::time::Instant::now() + WAIT;
        while !thread.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "module did not stop within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        thread.join().expect("the runner never panics")
    }

    /// Everything the module sent that no call collected (for example log
    /// lines from `on_unload` or `on_config`).
    pub fn drain(&self) -> Vec<Sent> {
        let mut out = Vec::new();
        while let Ok(msg) = self.sent.try_recv() {
            out.push(Sent::from(msg));
        }
        out
    }

    fn send(&self, msg: ToModule) {
        self.inbox
            .send_timeout(msg, WAIT)
            .unwrap_or_else(|_| panic!("module inbox full or closed"));
    }

    #[track_caller]
    fn next_sent(&self) -> FromModule {
        self.sent
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("module did not answer within {WAIT:?}: {e}"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Ends an instance a test did not shut down; the thread is detached.
        if self.thread.is_some() {
            let _ = self.inbox.try_send(ToModule::Shutdown);
        }
    }
}

impl From<FromModule> for Sent {
    fn from(msg: FromModule) -> Self {
        match msg {
            FromModule::Publish { rooms, data } => Sent::Publish(parse(&rooms), parse(&data)),
            FromModule::SendToUser { user, data } => {
                Sent::SendToUser(user.into_string(), parse(&data))
            }
            FromModule::Call {
                module,
                command,
                params,
                ..
            } => Sent::Call(module.into_string(), command.into_string(), parse(&params)),
            FromModule::Log { level, message } => Sent::Log(level, message.into_string()),
            FromModule::Reply { id, .. } | FromModule::Error { id, .. } => {
                panic!("reply for call {id} outside a call")
            }
        }
    }
}

/// A user caller with `roles`, in session `s1`.
pub fn user(name: &str, roles: &[&str]) -> Caller {
    Caller {
        kind: CallerKind::User,
        user: name.into(),
        session: "s1".into(),
        roles: roles.iter().map(|r| RString::from(*r)).collect::<RVec<_>>(),
        module: RString::new(),
    }
}

/// Module `name` as the caller.
pub fn module(name: &str) -> Caller {
    Caller {
        kind: CallerKind::Module,
        user: RString::new(),
        session: RString::new(),
        roles: RVec::new(),
        module: name.into(),
    }
}

/// A [`ModuleError`] with `code` and `message`, for responders.
pub fn failure(code: ErrorCode, message: &str) -> ModuleError {
    ModuleError {
        code,
        message: message.into(),
    }
}

fn parse(text: &RString) -> Value {
    serde_json::from_str(text.as_str())
        .unwrap_or_else(|e| panic!("module sent invalid JSON {text}: {e}"))
}

/// Records what the module sends and answers its calls.
struct Sink {
    sent: Mutex<mpsc::Sender<FromModule>>,
    inbox: RSender<ToModule>,
    responder: Arc<Responder>,
    deliveries: u64,
}

impl HostSink for Sink {
    fn send(&self, msg: FromModule) -> RResult<u64, Failure> {
        let delivered = match &msg {
            FromModule::Publish { .. } | FromModule::SendToUser { .. } => self.deliveries,
            FromModule::Call {
                id,
                module,
                command,
                params,
            } => {
                let params = parse(params);
                let outcome = match (self.responder)(module.as_str(), command.as_str(), &params) {
                    Ok(value) => RResult::ROk(RString::from(value.to_string())),
                    Err(error) => RResult::RErr(Failure::new(error.code, error.message)),
                };
                // The module reads this right after `send` returns.
                let _ = self
                    .inbox
                    .send(ToModule::CallResult(CallResultMsg { id: *id, outcome }));
                0
            }
            _ => 0,
        };
        let _ = self.sent.lock().expect("sink lock").send(msg);
        RResult::ROk(delivered)
    }
}
