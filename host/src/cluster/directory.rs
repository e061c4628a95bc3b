//! The module directory: which modules the other hosts serve, from their
//! announcements, as the broker's last endpoint source.
//!
//! Each host announces its modules (with their manifests, so a call is
//! checked here exactly as a local one) every [`ANNOUNCE_EVERY`]. An
//! announcement replaces what the host said before; a host that has not
//! announced for [`EXPIRES_AFTER`] is gone (killed, cut off), and one
//! that says goodbye at a clean stop is gone at once. Calls still waiting
//! on a module that no host serves any more are then answered
//! `module-unavailable`.
//!
//! What a host may announce is bounded ([`MAX_MODULES`] modules of at most
//! [`MAX_MANIFEST_BYTES`] each, [`MAX_HOSTS`] hosts): anything past the
//! bounds is left out and logged, never kept.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    remote::{RemoteCalls, RemoteEndpoint},
    wire::{AnnounceIn, WireManifest},
};
use crate::{
    broker::{EndpointSource, ModuleEndpoint},
    signing::validate_module_name,
    util::sync::lock,
};

/// How often a host announces its modules.
pub(super) const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// A host silent this long has left.
pub(super) const EXPIRES_AFTER: Duration = Duration::from_secs(3);
/// Modules one announcement may list.
pub(super) const MAX_MODULES: usize = 256;
/// Bytes one module's manifest may take on the wire.
pub(super) const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Other hosts the directory keeps.
const MAX_HOSTS: usize = 1024;
/// The longest timeout a host may announce for a module.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

struct HostEntry {
    modules: HashMap<String, Arc<RemoteEndpoint>>,
    seen: Instant,
}

/// Modules on other hosts, by host.
pub(super) struct Directory {
    own: String,
    /// By host name, so a module several hosts serve resolves to the same
    /// host's manifest each time.
    hosts: Mutex<BTreeMap<String, HostEntry>>,
    calls: Arc<RemoteCalls>,
    /// Hosts that left with a goodbye, and by falling silent: an operator
    /// tells clean stops from crashes and cut links by these.
    left_goodbye: AtomicU64,
    left_silent: AtomicU64,
}

impl Directory {
    pub(super) fn new(own: &str, calls: Arc<RemoteCalls>) -> Self {
        Self {
            own: own.to_owned(),
            hosts: Mutex::default(),
            calls,
            left_goodbye: AtomicU64::new(0),
            left_silent: AtomicU64::new(0),
        }
    }

    /// Takes in an announcement (JSON); this host's own are ignored.
    pub(super) fn receive(&self, payload: &[u8], now: Instant) {
        let announce: AnnounceIn = match serde_json::from_slice(payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cluster: dropped an announcement that does not parse ({e})");
                return;
            }
        };
        if announce.host == self.own {
            return;
        }
        if announce.bye {
            let left = lock(&self.hosts).remove(&announce.host).is_some();
            if left {
                self.left_goodbye.fetch_add(1, Ordering::Relaxed);
                tracing::info!(host = %announce.host, "cluster: a host said goodbye; its modules left the directory");
                self.fail_orphans(now);
            }
            return;
        }
        let mut hosts = lock(&self.hosts);
        if !hosts.contains_key(&announce.host) && hosts.len() >= MAX_HOSTS {
            tracing::warn!(host = %announce.host, "cluster: {MAX_HOSTS} hosts in the directory already; this one is left out");
            return;
        }
        let old = hosts.remove(&announce.host);
        let modules = self.modules_of(&announce, old.map(|h| h.modules));
        hosts.insert(announce.host, HostEntry { modules, seen: now });
        drop(hosts);
        // A module the host no longer lists may leave calls behind.
        self.fail_orphans(now);
    }

    /// The endpoints of an announcement, reusing those whose manifest did
    /// not change.
    fn modules_of(
        &self,
        announce: &AnnounceIn,
        mut old: Option<HashMap<String, Arc<RemoteEndpoint>>>,
    ) -> HashMap<String, Arc<RemoteEndpoint>> {
        if announce.modules.len() > MAX_MODULES {
            tracing::warn!(host = %announce.host, "cluster: the host announces {} modules; only the first {MAX_MODULES} are kept", announce.modules.len());
        }
        let mut modules = HashMap::new();
        for raw in announce.modules.iter().take(MAX_MODULES) {
            if raw.get().len() > MAX_MANIFEST_BYTES {
                tracing::warn!(host = %announce.host, "cluster: a manifest of more than {MAX_MANIFEST_BYTES} bytes is left out");
                continue;
            }
            let wire: WireManifest = match serde_json::from_str(raw.get()) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(host = %announce.host, "cluster: a manifest that does not parse is left out ({e})");
                    continue;
                }
            };
            if validate_module_name(wire.name()).is_err() {
                continue;
            }
            let manifest = wire.manifest();
            let timeout = wire.timeout().min(MAX_TIMEOUT);
            let kept = old
                .as_mut()
                .and_then(|o| o.remove(wire.name()))
                .filter(|e| e.same(&manifest, timeout));
            let endpoint = kept.unwrap_or_else(|| {
                Arc::new(RemoteEndpoint::new(manifest, timeout, self.calls.clone()))
            });
            modules.insert(wire.name().to_owned(), endpoint);
        }
        modules
    }

    /// Forgets hosts that stopped announcing, and answers the calls left
    /// waiting on modules nobody serves now.
    pub(super) fn expire(&self, now: Instant) {
        let mut gone = Vec::new();
        lock(&self.hosts).retain(|host, entry| {
            let alive = now.duration_since(entry.seen) < EXPIRES_AFTER;
            if !alive {
                gone.push(host.clone());
            }
            alive
        });
        self.left_silent
            .fetch_add(gone.len() as u64, Ordering::Relaxed);
        for host in &gone {
            tracing::warn!(%host, "cluster: a host stopped announcing; its modules left the directory");
        }
        self.fail_orphans(now);
    }

    fn fail_orphans(&self, now: Instant) {
        self.calls
            .fail_modules(|module| self.serving(module, now).is_none());
    }

    /// The endpoint of the first live host serving `module`.
    fn serving(&self, module: &str, now: Instant) -> Option<Arc<RemoteEndpoint>> {
        lock(&self.hosts)
            .values()
            .filter(|h| now.duration_since(h.seen) < EXPIRES_AFTER)
            .find_map(|h| h.modules.get(module).cloned())
    }

    /// Hosts in the directory and the modules they serve (each counted
    /// once per host).
    pub(super) fn size(&self) -> (usize, usize) {
        let hosts = lock(&self.hosts);
        (hosts.len(), hosts.values().map(|h| h.modules.len()).sum())
    }

    /// Hosts that left so far: (with a goodbye, by falling silent).
    pub(super) fn departures(&self) -> (u64, u64) {
        (
            self.left_goodbye.load(Ordering::Relaxed),
            self.left_silent.load(Ordering::Relaxed),
        )
    }
}

/// Modules of other hosts, asked after every local source.
impl EndpointSource for Directory {
    fn resolve(&self, module: &str) -> Option<Arc<dyn ModuleEndpoint>> {
        self.serving(module, Instant::now())
            .map(|e| e as Arc<dyn ModuleEndpoint>)
    }
}

#[cfg(test)]
mod tests {
    use modhost_plugin_api::{CommandSpec, Manifest};
    use serde_json::json;
    use tokio::sync::mpsc::Receiver;

    use super::*;
    use crate::{
        cluster::{remote::Outgoing, stats::CallStats},
        modules::{
            Admission,
            testing::{Record, operator_call},
        },
    };

    fn manifest(name: &str) -> serde_json::Value {
        let m = Manifest::new(name, "1.0.0").command(CommandSpec::new("x"));
        let wire = WireManifest::from(&m).with_timeout(Duration::from_secs(1));
        serde_json::to_value(wire).unwrap()
    }

    fn announce(host: &str, modules: Vec<serde_json::Value>, bye: bool) -> Vec<u8> {
        serde_json::to_vec(&json!({"host": host, "bye": bye, "modules": modules})).unwrap()
    }

    /// A directory for host `a`, its counters, and its send queue (held,
    /// never read: the calls sent here fit in it).
    fn directory() -> (Directory, Arc<CallStats>, Receiver<Outgoing>) {
        let stats = Arc::new(CallStats::default());
        stats.set_connected(true);
        let (calls, to_send) = RemoteCalls::new("p", "a", 1 << 20, stats.clone());
        (Directory::new("a", calls), stats, to_send)
    }

    #[test]
    fn hosts_come_and_go_with_their_announcements() {
        let (dir, _, _queue) = directory();
        let now = Instant::now();
        dir.receive(&announce("a", vec![manifest("own")], false), now);
        assert!(dir.resolve("own").is_none(), "this host's own are ignored");
        dir.receive(&announce("b", vec![manifest("echo")], false), now);
        assert_eq!(dir.resolve("echo").unwrap().name(), "echo");
        // A new announcement replaces the old one.
        dir.receive(&announce("b", vec![manifest("notes")], false), now);
        assert!(dir.resolve("echo").is_none());
        assert!(dir.resolve("notes").is_some());
        // Silent too long: gone.
        dir.expire(now + EXPIRES_AFTER);
        assert_eq!(dir.size(), (0, 0));
        assert_eq!(dir.departures(), (0, 1));
        // A goodbye: gone at once.
        dir.receive(
            &announce("c", vec![manifest("echo")], false),
            Instant::now(),
        );
        dir.receive(&announce("c", vec![], true), Instant::now());
        assert!(dir.resolve("echo").is_none());
        assert_eq!(dir.departures(), (1, 1));
        // A goodbye from a host already gone counts nothing.
        dir.receive(&announce("c", vec![], true), Instant::now());
        assert_eq!(dir.departures(), (1, 1));
    }

    #[test]
    fn announcements_are_bounded() {
        let (dir, _, _queue) = directory();
        let mut modules: Vec<_> = (0..MAX_MODULES + 10)
            .map(|i| manifest(&format!("m{i}")))
            .collect();
        modules.push(manifest("Not A Name"));
        let mut huge = manifest("huge");
        huge["description"] = json!("x".repeat(MAX_MANIFEST_BYTES));
        modules.insert(0, huge);
        dir.receive(&announce("b", modules, false), Instant::now());
        assert_eq!(dir.size(), (1, MAX_MODULES - 1));
        assert!(dir.resolve("huge").is_none());
        assert!(dir.resolve("Not A Name").is_none());
    }

    #[test]
    fn a_call_waiting_on_a_host_that_leaves_is_answered_unavailable() {
        let (dir, stats, _queue) = directory();
        dir.receive(
            &announce("b", vec![manifest("echo")], false),
            Instant::now(),
        );
        let endpoint = dir.resolve("echo").unwrap();
        let record = Record::default();
        assert!(matches!(
            endpoint.dispatch(operator_call(7), Box::new(record.clone())),
            Admission::Accepted
        ));
        assert!(record.lines().is_empty());
        dir.receive(&announce("b", vec![], true), Instant::now());
        assert_eq!(record.lines(), vec!["failed module-unavailable"]);
        assert_eq!(stats.report(0, 0, (0, 0)).failed, 1);
    }
}
