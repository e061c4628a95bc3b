//! Module name → running generation, plus refused builds, for the broker and
//! the admin API.
//!
//! Every change goes through here and is serialized by one lock: loading a
//! file (start-up, the watcher, the tests), removing a module, an operator
//! reset, and applying a new config. Installing a generation swaps it in
//! first and only then drains the old one in the background, so a call that
//! finds the old one closing can always ask again and find its successor.
//! On any failure the module's current generation keeps serving.
//!
//! # Layout
//! - this file: the registry's state, lookups, removal, the drain of
//!   retired generations, timeouts, shutdown
//! - `load`: verify, start and swap in a build; refusals; the rollback
//!   guard; operator resets
//! - `settings`: a new config applied to running modules; verify keys
//! - `listing`: the rows of `GET /api/modules`, one per module name, with
//!   each module's recent history
//! - `toggle`: modules switched off and on by an operator at runtime

mod listing;
mod load;
mod settings;
mod toggle;

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use crate::{
    config::ModulesConfig,
    signing::{Keyring, SeqStore},
    util::sync::{lock, read, write},
};

use super::{generation::Generation, services::HostServices};

pub use listing::{MAX_EVENTS, ModuleEvent, ModuleInfo, RefusedBuild};
pub use toggle::{DISABLED_FILE, ToggleError};

/// How queues and timeouts are set for new generations.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `[modules]` (dir, keys, per-module tables).
    pub modules: ModulesConfig,
    /// Calls that may wait for one instance.
    pub queue: usize,
    /// Default call timeout.
    pub call_timeout: Duration,
}

/// What [`Registry::try_load_file`] did with a file.
pub enum LoadOutcome {
    /// A new generation was started and now serves the module.
    Loaded(Arc<Generation>),
    /// The file holds the build already serving (same SHA-512 and seq):
    /// nothing was done.
    Unchanged(Arc<Generation>),
}

impl LoadOutcome {
    /// The generation serving the module now.
    pub fn generation(&self) -> &Arc<Generation> {
        match self {
            LoadOutcome::Loaded(g) | LoadOutcome::Unchanged(g) => g,
        }
    }
}

/// Why an operator reset did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// No such module is loaded.
    #[error("no module named {0:?} is loaded")]
    NotLoaded(String),
    /// The fresh instance did not start; the old one is still in place.
    #[error(
        "module {module}: a fresh instance did not start: {reason}; the previous one stays in place"
    )]
    StartFailed {
        /// The module.
        module: String,
        /// Why (`on_load` failed or panicked).
        reason: String,
    },
}

/// What the registry remembers about a module across its generations, also
/// while it is not loaded (removed or disabled).
#[derive(Default)]
struct History {
    /// Libraries of this module mapped in this process (each stays mapped).
    builds: u64,
    /// Highest generation number handed out.
    last_generation: u64,
    /// Instance threads that did not stop when asked and were left behind.
    stuck_threads: Arc<AtomicU64>,
    /// The last refusal or failure, cleared when a generation starts.
    last_error: Option<String>,
    /// Loads, swaps, resets, refusals and removals, oldest first, at most
    /// [`MAX_EVENTS`].
    events: VecDeque<ModuleEvent>,
}

impl History {
    /// Remembers `event`, forgetting the oldest past [`MAX_EVENTS`]. The
    /// same refusal seen again (the watcher sees a `.so` and its `.sig`)
    /// only moves the newest event's time.
    fn record(&mut self, event: ModuleEvent) {
        if let Some(last) = self.events.back_mut()
            && last.generation.is_none()
            && last.event == event.event
            && last.detail == event.detail
        {
            last.at = event.at;
            return;
        }
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

struct Refusal {
    module: Option<String>,
    error: String,
    at: SystemTime,
    /// Refused only because config.toml disables the module: loaded again
    /// when it is enabled.
    disabled: bool,
}

/// All modules known to the host.
pub struct Registry {
    entries: RwLock<HashMap<String, Arc<Generation>>>,
    history: Mutex<HashMap<String, History>>,
    refused: RwLock<BTreeMap<PathBuf, Refusal>>,
    draining: Mutex<Vec<Arc<Generation>>>,
    services: OnceLock<Arc<dyn HostServices>>,
    keyring: RwLock<Keyring>,
    seqs: SeqStore,
    settings: RwLock<RuntimeSettings>,
    changes: tokio::sync::watch::Sender<u64>,
    load_lock: Mutex<()>,
    mapped_builds: AtomicU64,
    /// Generations started, by how (`/metrics`).
    starts: Mutex<BTreeMap<&'static str, u64>>,
    /// Builds refused, by [`super::error::LoadErrorKind::reason`] (`/metrics`).
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    /// Modules an operator switched off (`toggle`), kept in `state_dir`.
    operator_disabled: RwLock<HashSet<String>>,
}

impl Registry {
    /// A registry with no modules yet.
    pub fn new(settings: RuntimeSettings, keyring: Keyring, seqs: SeqStore) -> Arc<Self> {
        let operator_disabled = toggle::read_disabled(&settings.modules.state_dir);
        Arc::new(Self {
            entries: RwLock::default(),
            history: Mutex::default(),
            refused: RwLock::default(),
            draining: Mutex::default(),
            services: OnceLock::new(),
            keyring: RwLock::new(keyring),
            seqs,
            settings: RwLock::new(settings),
            changes: tokio::sync::watch::channel(0).0,
            load_lock: Mutex::new(()),
            mapped_builds: AtomicU64::new(0),
            starts: Mutex::default(),
            refusals: Mutex::default(),
            operator_disabled: RwLock::new(operator_disabled),
        })
    }

    /// Connects the services modules call back into. Must happen before
    /// the first load.
    pub fn set_services(&self, services: Arc<dyn HostServices>) {
        let _ = self.services.set(services);
    }

    /// Notified with a counter whenever the set of callable modules changes.
    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The settings new generations start with.
    pub fn settings(&self) -> RuntimeSettings {
        read(&self.settings).clone()
    }

    /// The running generation of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Generation>> {
        read(&self.entries).get(name).cloned()
    }

    /// Every running generation, by name.
    pub fn running(&self) -> Vec<Arc<Generation>> {
        let mut all: Vec<_> = read(&self.entries).values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Sends event `name` (`data`: a JSON object) to every running module,
    /// never waiting: a module with no room for it loses it, logged at
    /// warn ([`Generation::event`]). Returns how many took it.
    pub fn broadcast_event(&self, name: &str, data: &str) -> usize {
        let mut delivered = 0;
        for generation in self.running() {
            if generation.event(name, data) {
                delivered += 1;
            } else {
                tracing::warn!(module = %generation.name, event = name, "event dropped: the module has too many messages waiting, or is stopping");
            }
        }
        delivered
    }

    /// Generations started so far, by how: `load` (a module's first),
    /// `swap` (a new build replacing one) and `reset` (an operator reset).
    pub fn starts(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.starts).clone()
    }

    /// Builds refused so far, by reason ([`super::error::LoadErrorKind::reason`]).
    pub fn refusals(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.refusals).clone()
    }

    fn count(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
        *lock(map).entry(key).or_default() += 1;
    }

    /// Libraries mapped by this process so far, over all modules.
    pub fn mapped_builds(&self) -> u64 {
        self.mapped_builds.load(Ordering::Relaxed)
    }

    /// Deregisters `name`: new calls get `unknown-module`; calls it already
    /// accepted are still answered.
    pub fn remove(&self, name: &str) -> bool {
        let _serial = lock(&self.load_lock);
        self.remove_locked(name, "removed")
    }

    fn remove_locked(&self, name: &str, why: &str) -> bool {
        let removed = write(&self.entries).remove(name);
        match removed {
            Some(old) => {
                tracing::info!(
                    module = %name, generation = old.generation,
                    "module deregistered ({why}): new calls get unknown-module; generation {} finishes the calls it accepted",
                    old.generation
                );
                self.record(name, ModuleEvent::new("removed", Some(&old), why));
                self.retire(old, why.to_owned());
                self.changes.send_modify(|n| *n += 1);
                true
            }
            None => false,
        }
    }

    /// `file` (or its `.sig`) is gone from the modules folder: deregisters
    /// the module that runs the build loaded from it, and forgets a refusal
    /// of it. Returns the module deregistered, if any.
    pub fn file_gone(&self, file: &Path) -> Option<String> {
        let _serial = lock(&self.load_lock);
        write(&self.refused).remove(file);
        let name = read(&self.entries)
            .values()
            .find(|g| g.file == file)
            .map(|g| g.name.clone())?;
        self.remove_locked(&name, "its .so or .sig was removed from the modules folder")
            .then_some(name)
    }

    /// Adds `event` to `name`'s history.
    fn record(&self, name: &str, event: ModuleEvent) {
        lock(&self.history)
            .entry(name.to_owned())
            .or_default()
            .record(event);
    }

    /// Drains `old` in the background and logs how it ended.
    fn retire(&self, old: Arc<Generation>, why: String) {
        old.begin_drain();
        lock(&self.draining).push(old.clone());
        let stuck = lock(&self.history)
            .entry(old.name.clone())
            .or_default()
            .stuck_threads
            .clone();
        let deadline = Duration::from_millis(old.call_timeout_ms()) + Duration::from_secs(5);
        let _ = std::thread::Builder::new()
            .name(format!("drain-{}", old.name))
            .spawn(move || {
                let in_flight = old.in_flight();
                if old.wait_stopped(deadline) {
                    tracing::info!(
                        module = %old.name, generation = old.generation, in_flight,
                        "generation {} drained ({why}): the {in_flight} call(s) it still held were answered, on_unload ran and it stopped; its library stays mapped",
                        old.generation
                    );
                } else {
                    let n = stuck.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        module = %old.name, generation = old.generation, stuck_threads = n,
                        "generation {} did not stop within {} s ({why}): its remaining calls got module-unavailable and its thread is left behind ({n} stuck thread(s) of this module so far)",
                        old.generation,
                        deadline.as_secs()
                    );
                }
            });
    }

    /// Answers overdue calls of every generation with `module-timeout`, and
    /// marks a generation degraded after too many in a row.
    pub fn expire_overdue(&self) {
        let now = Instant::now();
        for generation in self.running() {
            if generation.expire_overdue(now) {
                lock(&self.history)
                    .entry(generation.name.clone())
                    .or_default()
                    .last_error = Some(format!(
                    "degraded: generation {} stopped answering ({} calls in a row timed out)",
                    generation.generation,
                    super::generation::DEGRADE_AFTER_TIMEOUTS
                ));
            }
        }
        let mut draining = lock(&self.draining);
        draining.retain(|g| {
            g.expire_overdue(now);
            !g.thread_finished() || g.in_flight() > 0
        });
    }

    /// Stops every module (host shutdown), waiting up to `deadline`.
    pub fn shutdown(&self, deadline: Duration) {
        let _serial = lock(&self.load_lock);
        let all: Vec<Arc<Generation>> = write(&self.entries).drain().map(|(_, g)| g).collect();
        for g in &all {
            g.begin_drain();
        }
        for g in &all {
            if !g.wait_stopped(deadline) {
                tracing::warn!(module = %g.name, "module did not stop within {} s at shutdown; its thread is left behind", deadline.as_secs());
            }
        }
    }
}

#[cfg(test)]
mod history_tests {
    use super::{History, MAX_EVENTS, ModuleEvent};

    #[test]
    fn the_history_is_bounded_and_a_refusal_seen_again_is_kept_once() {
        let mut history = History::default();
        history.record(ModuleEvent::new("refused", None, "bad signature"));
        history.record(ModuleEvent::new("refused", None, "bad signature"));
        assert_eq!(history.events.len(), 1);
        history.record(ModuleEvent::new("refused", None, "rollback"));
        assert_eq!(history.events.len(), 2);
        for i in 0..MAX_EVENTS {
            history.record(ModuleEvent::new("removed", None, &i.to_string()));
        }
        assert_eq!(history.events.len(), MAX_EVENTS);
        assert_eq!(history.events[0].detail, "0", "the oldest were forgotten");
    }
}
