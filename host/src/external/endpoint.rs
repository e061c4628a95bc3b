//! A registered external module as a broker endpoint.
//!
//! [`Link`] is one module connection as the rest of the host sees it: its
//! bounded outbox of signed frames, the calls it has been given and not yet
//! answered ([`PendingCalls`]: timeouts, exactly-once), and on whose behalf
//! each of those calls runs. [`ExternalEndpoint`] is a registered manifest
//! on a link; the broker has already checked every call it gets (command,
//! params, role, stamped caller).
//!
//! A call is `{"type":"call","id","command","params","caller"}`; the module
//! answers `{"type":"reply","id","result","done"?}` (`done: false` for a
//! stream item) or `{"type":"error","id","code"?,"message"}`. When the
//! connection closes, every call still pending gets `module-unavailable`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ed25519_dalek::SigningKey;
use modhost_plugin_api::{Caller, CallerKind, CommandSpec, ErrorCode, Manifest};
use serde_json::{Value, json, value::RawValue};
use tokio::sync::mpsc;

use super::envelope;
use crate::{
    broker::{ModuleEndpoint, StampedCall},
    modules::{Admission, CallContext, CallFailure, CallSink, PendingCalls},
    state::AppState,
    util::sync,
};

/// Longest manifest field (names, descriptions), in bytes.
const MAX_FIELD: usize = 1024;
/// Most commands one manifest may declare.
const MAX_COMMANDS: usize = 256;

/// One module connection, as endpoints and other connections reach it.
pub struct Link {
    /// Unique per connection, so a late disconnect of an old connection
    /// cannot take a name from the new one.
    pub id: u64,
    /// The module's name (its `.pub` file).
    pub module: String,
    outbox: mpsc::Sender<String>,
    /// Calls sent to the module and not answered yet.
    pub pending: PendingCalls,
    contexts: Mutex<HashMap<u64, Arc<CallContext>>>,
    closed: AtomicBool,
    key: SigningKey,
    state: Weak<AppState>,
}

impl Link {
    /// A link for `module`'s connection whose writer drains `outbox`.
    pub fn new(
        id: u64,
        module: &str,
        outbox: mpsc::Sender<String>,
        key: SigningKey,
        state: Weak<AppState>,
    ) -> Self {
        Self {
            id,
            module: module.to_owned(),
            outbox,
            pending: PendingCalls::default(),
            contexts: Mutex::default(),
            closed: AtomicBool::new(false),
            key,
            state,
        }
    }

    /// Signs `body` and queues it; false when the outbox is full or closed
    /// (the module reads too slowly, or is gone).
    pub fn send(&self, body: &Value) -> bool {
        self.outbox
            .try_send(envelope::seal(&self.key, body))
            .is_ok()
    }

    /// The call `id` this module is handling, for what it does on that
    /// caller's behalf (publish, call another module).
    pub fn context(&self, id: u64) -> Option<Arc<CallContext>> {
        sync::lock(&self.contexts).get(&id).cloned()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The connection closed: no more calls, and those pending fail.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let failed = self.pending.fail_all(&CallFailure::new(
            ErrorCode::ModuleUnavailable,
            format!(
                "external module {} disconnected before answering",
                self.module
            ),
        ));
        if failed > 0 {
            tracing::info!(module = %self.module, failed, "external module disconnected with calls in flight");
        }
    }

    /// Finishes call `id` with the module's answer (`reply` or `error`).
    pub fn answer(&self, id: u64, outcome: Result<&str, CallFailure>, done: bool) {
        match outcome {
            Ok(result) if !done => self.pending.item(id, result),
            outcome => {
                self.pending.finish(id, outcome);
            }
        }
    }
}

/// Forgets a call's context when its sink is answered, however that
/// happens (reply, timeout, disconnect, refusal).
struct Tracked {
    inner: Box<dyn CallSink>,
    link: Weak<Link>,
    id: u64,
}

impl CallSink for Tracked {
    fn item(&mut self, result: &str) {
        self.inner.item(result);
    }
    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        if let Some(link) = self.link.upgrade() {
            sync::lock(&link.contexts).remove(&self.id);
        }
        self.inner.finish(outcome);
    }
}

/// A registered manifest served over a link.
pub(super) struct ExternalEndpoint {
    manifest: Manifest,
    name: String,
    /// The connection serving it.
    pub link: Arc<Link>,
}

impl ExternalEndpoint {
    /// `manifest` served by `link`.
    pub(super) fn new(manifest: Manifest, link: Arc<Link>) -> Self {
        Self {
            name: manifest.name.to_string(),
            manifest,
            link,
        }
    }

    /// The same manifest on another connection (a reconnect in the grace
    /// period keeps what was registered).
    pub(super) fn moved_to(&self, link: Arc<Link>) -> Self {
        Self::new(self.manifest.clone(), link)
    }

    /// The manifest's command names.
    pub(super) fn commands(&self) -> Vec<String> {
        self.manifest
            .commands
            .iter()
            .map(|c| c.name.to_string())
            .collect()
    }

    fn limits(&self) -> Option<(usize, Duration)> {
        let state = self.link.state.upgrade()?;
        let config = state.config.load();
        let timeout = config
            .modules
            .settings_for(&self.name)
            .call_timeout
            .unwrap_or(config.limits.call_timeout);
        Some((config.external.max_pending_calls, timeout))
    }
}

fn unavailable(module: &str, why: &str) -> CallFailure {
    CallFailure::new(
        ErrorCode::ModuleUnavailable,
        format!("external module {module} {why}"),
    )
}

/// The caller as the module sees it (stamped by the host).
pub(super) fn caller_json(caller: &Caller) -> Value {
    let kind = match caller.kind {
        CallerKind::User => "user",
        CallerKind::Module => "module",
        CallerKind::Operator => "operator",
    };
    let roles: Vec<&str> = caller.roles.iter().map(|r| r.as_str()).collect();
    json!({
        "kind": kind,
        "user": caller.user.as_str(),
        "session": caller.session.as_str(),
        "roles": roles,
        "module": caller.module.as_str(),
    })
}

impl ModuleEndpoint for ExternalEndpoint {
    fn name(&self) -> &str {
        &self.name
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn dispatch(&self, call: StampedCall<'_>, sink: Box<dyn CallSink>) -> Admission {
        let link = &self.link;
        if link.is_closed() {
            return Admission::Rejected(sink, unavailable(&self.name, "is disconnected"));
        }
        let Some((max_pending, timeout)) = self.limits() else {
            return Admission::Rejected(sink, unavailable(&self.name, "is shutting down"));
        };
        if link.pending.len() >= max_pending {
            return Admission::Rejected(
                sink,
                unavailable(
                    &self.name,
                    &format!(
                        "has {max_pending} calls unanswered ([external] max_pending_calls); try again"
                    ),
                ),
            );
        }
        // The broker checked that params are a JSON object.
        let params = RawValue::from_string(call.params.to_owned())
            .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("valid JSON"));
        let frame = json!({
            "type": "call",
            "id": call.id,
            "command": call.command,
            "params": params,
            "caller": caller_json(&call.caller),
        });
        let admin_command = self.manifest.commands.iter().any(|c| {
            c.name.as_str() == call.command && c.min_role.as_str() == crate::auth::ADMIN_ROLE
        });
        sync::lock(&link.contexts).insert(
            call.id,
            Arc::new(CallContext {
                caller: call.caller,
                user: call.user,
                admin_command,
            }),
        );
        let tracked = Tracked {
            inner: sink,
            link: Arc::downgrade(link),
            id: call.id,
        };
        link.pending.insert(call.id, Box::new(tracked), timeout);
        // `close` marks the link before it fails what is pending: a call
        // inserted after that must be taken back here.
        if link.is_closed() {
            return match link.pending.cancel(call.id) {
                Some(sink) => Admission::Rejected(sink, unavailable(&self.name, "is disconnected")),
                None => Admission::Accepted,
            };
        }
        if link.send(&frame) {
            return Admission::Accepted;
        }
        match link.pending.cancel(call.id) {
            Some(sink) => Admission::Rejected(
                sink,
                unavailable(
                    &self.name,
                    "is not reading its calls fast enough; try again",
                ),
            ),
            // The link closed in between and answered it.
            None => Admission::Accepted,
        }
    }
}

/// Reads a `register` manifest: `{"version"?, "description"?, "commands":
/// [{"name", "params"?: [..], "needs_reply"?, "streams"?, "min_role"?,
/// "description"?}]}`, the shape of an in-process module's manifest. Its
/// name is always the module's own.
pub(super) fn parse_manifest(module: &str, value: &Value) -> Result<Manifest, String> {
    let obj = value
        .as_object()
        .ok_or("manifest must be an object with a \"commands\" list")?;
    let text = |v: Option<&Value>, key: &str| -> Result<String, String> {
        match v {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) if s.len() <= MAX_FIELD => Ok(s.clone()),
            Some(_) => Err(format!(
                "{key} must be a string of at most {MAX_FIELD} bytes"
            )),
        }
    };
    let flag = |v: Option<&Value>, key: &str, default: bool| -> Result<bool, String> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("{key} must be true or false")),
        }
    };
    if let Some(name) = obj.get("name").and_then(Value::as_str)
        && name != module
    {
        return Err(format!(
            "manifest name {name:?} is not this module's name {module:?}"
        ));
    }
    let version = text(obj.get("version"), "version")?;
    let mut manifest = Manifest::new(
        module,
        if version.is_empty() {
            "0.0.0"
        } else {
            &version
        },
    );
    manifest.description = text(obj.get("description"), "description")?.into();
    let commands = obj
        .get("commands")
        .and_then(Value::as_array)
        .ok_or("manifest.commands must be a list")?;
    if commands.len() > MAX_COMMANDS {
        return Err(format!("at most {MAX_COMMANDS} commands"));
    }
    for c in commands {
        let name = text(c.get("name"), "command name")?;
        if name.is_empty() {
            return Err("every command needs a name".to_owned());
        }
        if manifest.commands.iter().any(|x| x.name.as_str() == name) {
            return Err(format!("command {name:?} is declared twice"));
        }
        let mut spec = CommandSpec::new(&name);
        for p in c
            .get("params")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            spec = spec.param(&text(Some(p), "param")?);
        }
        spec.needs_reply = flag(c.get("needs_reply"), "needs_reply", true)?;
        spec.streams = flag(c.get("streams"), "streams", false)?;
        spec.min_role = text(c.get("min_role"), "min_role")?.into();
        spec.description = text(c.get("description"), "description")?.into();
        manifest.commands.push(spec);
    }
    Ok(manifest)
}
