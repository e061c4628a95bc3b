//! External modules by name: which connection serves a name, what it
//! registered, and the grace period after it disconnects.
//!
//! A name is taken by a signed `module_start` whose origin is that name, so
//! only the holder of its key can take it, and only while nobody else
//! holds it: a second connection for a live name, or a name an in-process
//! module serves, gets `already_running`. When a connection closes, its
//! calls fail with `module-unavailable` and the name stays reserved for
//! `[external] grace_secs` with its registered commands: calls in that time
//! get `module-unavailable` (not `unknown-module`), and a reconnect takes
//! the name back without registering again. After the grace period the name
//! is forgotten (lazily, the next time the table is read).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ed25519_dalek::SigningKey;
use modhost_plugin_api::Manifest;
use serde::Serialize;

use super::{
    endpoint::{ExternalEndpoint, Link},
    host_key::{self, HostKeyError},
    replay::ReplayGuard,
};
use crate::{
    broker::{EndpointSource, ModuleEndpoint},
    util::sync,
};

/// One name's entry.
struct Slot {
    /// The live connection; `None` in the grace period.
    link: Option<Arc<Link>>,
    /// What the module registered, if it did.
    endpoint: Option<Arc<ExternalEndpoint>>,
    /// The `port` its `module_start` named (sse-platform's modules ran web
    /// servers of their own).
    port: serde_json::Value,
    /// When the grace period ends, while disconnected.
    until: Option<Instant>,
}

impl Slot {
    fn expired(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| until <= now)
    }
}

/// Why `module_start` did not take a name.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartRefused {
    /// Another live connection holds the name.
    #[error("module {0} is already connected; close the other connection first")]
    Connected(String),
}

/// A row of `GET /api/modules` for an external module.
#[derive(Debug, Clone, Serialize)]
pub struct ExternalInfo {
    /// Module name.
    pub name: String,
    /// Always `external`.
    pub kind: &'static str,
    /// `running` (connected), `disconnected` (in its grace period).
    pub state: &'static str,
    /// The registered manifest's version, if it registered.
    pub version: Option<String>,
    /// Its registered commands.
    pub commands: Vec<String>,
    /// Calls sent to it and not answered yet.
    pub calls_in_flight: usize,
}

/// The external modules of this host.
#[derive(Default)]
pub struct External {
    slots: Mutex<HashMap<String, Slot>>,
    /// `resolve_id`s seen, per module.
    pub replay: ReplayGuard,
    host_key: OnceLock<SigningKey>,
    making_key: Mutex<()>,
    next_link: AtomicU64,
}

impl External {
    /// A new connection's id.
    pub fn next_link_id(&self) -> u64 {
        self.next_link.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The host's frame-signing key, read or made in `state_dir` the first
    /// time. A failure is not remembered: the next connection tries again.
    pub fn host_key(&self, state_dir: &std::path::Path) -> Result<SigningKey, HostKeyError> {
        if let Some(key) = self.host_key.get() {
            return Ok(key.clone());
        }
        let _one_at_a_time = sync::lock(&self.making_key);
        if let Some(key) = self.host_key.get() {
            return Ok(key.clone());
        }
        let key = host_key::load_or_create(state_dir)?;
        Ok(self.host_key.get_or_init(|| key).clone())
    }

    /// Gives `link` its module's name, unless a live connection holds it.
    /// A registration kept through the grace period moves to `link`.
    pub fn start(&self, link: &Arc<Link>, port: serde_json::Value) -> Result<(), StartRefused> {
        let now = Instant::now();
        let mut slots = sync::lock(&self.slots);
        let name = &link.module;
        if let Some(slot) = slots.get(name)
            && slot.expired(now)
        {
            slots.remove(name);
        }
        match slots.get_mut(name) {
            Some(slot) if slot.link.as_ref().is_some_and(|l| !l.is_closed()) => {
                Err(StartRefused::Connected(name.clone()))
            }
            Some(slot) => {
                slot.link = Some(link.clone());
                slot.until = None;
                slot.port = port;
                slot.endpoint = slot
                    .endpoint
                    .as_ref()
                    .map(|e| Arc::new(e.moved_to(link.clone())));
                Ok(())
            }
            None => {
                slots.insert(
                    name.clone(),
                    Slot {
                        link: Some(link.clone()),
                        endpoint: None,
                        port,
                        until: None,
                    },
                );
                Ok(())
            }
        }
    }

    /// Serves `manifest` (already checked) on `link`, replacing what it
    /// registered before. False if `link` does not hold the name.
    pub fn register(&self, link: &Arc<Link>, manifest: Manifest) -> bool {
        let mut slots = sync::lock(&self.slots);
        match slots.get_mut(&link.module) {
            Some(slot) if slot.link.as_ref().is_some_and(|l| l.id == link.id) => {
                slot.endpoint = Some(Arc::new(ExternalEndpoint::new(manifest, link.clone())));
                true
            }
            _ => false,
        }
    }

    /// `link` closed: its name is kept for `grace`, or freed now.
    pub fn disconnected(&self, link: &Link, grace: Duration) {
        let mut slots = sync::lock(&self.slots);
        let Some(slot) = slots.get_mut(&link.module) else {
            return;
        };
        if slot.link.as_ref().is_none_or(|l| l.id != link.id) {
            return;
        }
        if grace.is_zero() {
            slots.remove(&link.module);
        } else {
            slot.link = None;
            slot.until = Some(Instant::now() + grace);
        }
    }

    /// The live connection of `module`, for `message_module`.
    pub fn link(&self, module: &str) -> Option<Arc<Link>> {
        sync::lock(&self.slots)
            .get(module)
            .and_then(|s| s.link.clone())
            .filter(|l| !l.is_closed())
    }

    /// Sends `body`, signed, to every connected module that has started
    /// (a signed `module_start` named it, so it holds its key), never
    /// waiting: a module whose outbox is full loses it, logged at warn.
    /// Returns how many took it. For sse-platform's broadcasts
    /// (`user_logout` …), which carry names and roles, never a token.
    pub fn broadcast(&self, body: &serde_json::Value) -> usize {
        let links: Vec<Arc<Link>> = sync::lock(&self.slots)
            .values()
            .filter_map(|s| s.link.clone())
            .filter(|l| !l.is_closed())
            .collect();
        let mut sent = 0;
        for link in links {
            if link.send(body) {
                sent += 1;
            } else {
                tracing::warn!(module = %link.module, kind = %body["type"], "broadcast dropped: the module reads too slowly");
            }
        }
        sent
    }

    /// Connected modules and the `port` each named.
    pub fn running(&self) -> Vec<(String, serde_json::Value)> {
        let slots = sync::lock(&self.slots);
        let mut out: Vec<_> = slots
            .iter()
            .filter(|(_, s)| s.link.is_some())
            .map(|(name, s)| (name.clone(), s.port.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Rows for `GET /api/modules`.
    pub fn list(&self) -> Vec<ExternalInfo> {
        let now = Instant::now();
        let slots = sync::lock(&self.slots);
        let mut out: Vec<ExternalInfo> = slots
            .iter()
            .filter(|(_, s)| !s.expired(now))
            .map(|(name, s)| ExternalInfo {
                name: name.clone(),
                kind: "external",
                state: if s.link.is_some() {
                    "running"
                } else {
                    "disconnected"
                },
                version: s
                    .endpoint
                    .as_ref()
                    .map(|e| e.manifest().version.to_string()),
                commands: s
                    .endpoint
                    .as_ref()
                    .map(|e| e.commands())
                    .unwrap_or_default(),
                calls_in_flight: s.link.as_ref().map_or(0, |l| l.pending.len()),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// Registered external modules as the broker's second source (after the
/// in-process registry, which a connecting module can never shadow).
impl EndpointSource for External {
    fn resolve(&self, module: &str) -> Option<Arc<dyn ModuleEndpoint>> {
        let now = Instant::now();
        let slots = sync::lock(&self.slots);
        let slot = slots.get(module).filter(|s| !s.expired(now))?;
        slot.endpoint.clone().map(|e| e as Arc<dyn ModuleEndpoint>)
    }
}
