//! Module name → running generation, plus refused builds, for the broker and
//! the admin API.
//!
//! Every change goes through here and is serialized by one lock: loading a
//! file (start-up, the watcher, the tests), removing a module, an operator
//! reset, and applying a new config. Installing a generation swaps it in
//! first and only then drains the old one in the background, so a call that
//! finds the old one closing can always ask again and find its successor.
//! On any failure the module's current generation keeps serving.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;

use crate::{
    config::ModulesConfig,
    signing::{Keyring, SeqError, SeqStore},
    util::sync::{lock, read, write},
};

use super::{
    error::{LoadError, LoadErrorKind},
    generation::{Generation, StartOptions},
    loader::{self, LoadedLibrary},
    services::HostServices,
    sink::DEFAULT_PUBLISHES_PER_SECOND,
};

/// Libraries are never unloaded (abi_stable cannot), so every build loaded
/// stays mapped until the process exits. Past this many in one process the
/// load log recommends a restart.
const MAPPED_BUILDS_WARNING: u64 = 200;

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
    /// `(seq, sha512)` of the last build this process accepted.
    accepted: Option<(u64, [u8; 64])>,
}

struct Refusal {
    module: Option<String>,
    error: String,
    at: SystemTime,
    /// Refused only because config.toml disables the module: loaded again
    /// when it is enabled.
    disabled: bool,
}

/// A row of `GET /api/modules`.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// Module name (the file name for a build refused before its name was known).
    pub name: String,
    /// Version, when running.
    pub version: Option<String>,
    /// Signed seq, when running.
    pub seq: Option<u64>,
    /// Generation number, when running.
    pub generation: Option<u64>,
    /// `running`, `draining`, `degraded`, `failed`, `stopped`, `refused` or
    /// `disabled`.
    pub state: String,
    /// The `.so` file.
    pub file: String,
    /// Why it was refused or failed.
    pub error: Option<String>,
    /// Unix seconds when it started serving (when it was refused, for a
    /// refused file).
    pub loaded_at: Option<u64>,
    /// Builds of this module loaded so far in this process; each stays mapped.
    pub generations: u64,
    /// Restarts after panics in the current generation.
    pub restarts: u64,
    /// Calls answered with module-timeout by the current generation.
    pub timeouts: u64,
    /// Instance threads of this module that never stopped and were left behind.
    pub stuck_threads: u64,
    /// The last refusal or failure for this module, if any.
    pub last_error: Option<String>,
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
}

impl Registry {
    /// A registry with no modules yet.
    pub fn new(settings: RuntimeSettings, keyring: Keyring, seqs: SeqStore) -> Arc<Self> {
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

    /// Libraries mapped by this process so far, over all modules.
    pub fn mapped_builds(&self) -> u64 {
        self.mapped_builds.load(Ordering::Relaxed)
    }

    /// Reads the verify keys again (`[modules] verify_keys`), so a key added
    /// while the host runs is trusted from the next load on. On error the
    /// keys in use are kept. Returns how many modules have keys.
    pub fn reload_keys(&self) -> Result<usize, String> {
        let dirs = read(&self.settings).modules.verify_keys.clone();
        let ring = Keyring::load(&dirs).map_err(|e| e.to_string())?;
        let modules = ring.modules().count();
        *write(&self.keyring) = ring;
        Ok(modules)
    }

    /// Loads every `*.so` in the modules folder. Refusals are logged and
    /// listed; they never stop the host.
    pub fn load_all(&self) -> usize {
        let dir = read(&self.settings).modules.dir.clone();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "so"))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot read the modules folder: {e}; no modules are loaded (check [modules] dir)");
                return 0;
            }
        };
        files.sort();
        files.iter().filter(|f| self.load_file(f).is_ok()).count()
    }

    /// Verifies, loads and starts `file`, then swaps it in for its module.
    /// On any failure the module's current generation keeps serving.
    /// `Err` carries the refusal reason (also logged and listed). A file
    /// holding the build already serving is `Ok` with that generation.
    pub fn load_file(&self, file: &Path) -> Result<Arc<Generation>, String> {
        let _serial = lock(&self.load_lock);
        match self.load_locked(file) {
            Ok(outcome) => Ok(outcome.generation().clone()),
            Err(error) => {
                self.refuse(file, &error);
                Err(error.to_string())
            }
        }
    }

    /// Like [`Registry::load_file`], but a refusal is only returned, not
    /// logged or listed: the watcher decides whether the file is finished
    /// (then it calls [`Registry::refuse`]) or still being written.
    pub fn try_load_file(&self, file: &Path) -> Result<LoadOutcome, LoadError> {
        let _serial = lock(&self.load_lock);
        self.load_locked(file)
    }

    /// Logs and lists a refused build. The module's running generation, if
    /// any, keeps serving.
    pub fn refuse(&self, file: &Path, error: &LoadError) {
        let module = error.module.clone();
        let disabled = matches!(*error.kind, LoadErrorKind::Disabled { .. });
        let running = module.as_deref().and_then(|m| self.get(m));
        if disabled {
            tracing::info!(
                module = module.as_deref().unwrap_or("?"),
                file = %file.display(),
                "module not loaded: {error}"
            );
        } else {
            match &running {
                Some(g) => tracing::error!(
                    module = %g.name,
                    file = %file.display(),
                    "new build refused: {error}; generation {} (seq {}) keeps serving",
                    g.generation,
                    g.seq
                ),
                None => tracing::error!(
                    module = module.as_deref().unwrap_or("?"),
                    file = %file.display(),
                    "module refused: {error}"
                ),
            }
        }
        if let Some(name) = &module {
            lock(&self.history)
                .entry(name.clone())
                .or_default()
                .last_error = Some(error.to_string());
        }
        write(&self.refused).insert(
            file.to_owned(),
            Refusal {
                module,
                error: error.to_string(),
                at: SystemTime::now(),
                disabled,
            },
        );
    }

    fn load_locked(&self, file: &Path) -> Result<LoadOutcome, LoadError> {
        let began = Instant::now();
        let settings = read(&self.settings).clone();
        let build = {
            let keyring = read(&self.keyring);
            loader::verify(file, &keyring)?
        };
        let name = build.envelope.module.clone();
        let (seq, sha512) = (build.envelope.seq, build.envelope.sha512);
        let running = self.get(&name);
        if let Some(current) = &running
            && current.library.envelope.seq == seq
            && current.library.envelope.sha512 == sha512
        {
            // The watcher sees a build it already runs (a touched file, the
            // `.so` half of an update whose `.sig` is still the old one, or
            // a second copy): not news, and certainly not a rollback.
            write(&self.refused).remove(file);
            return Ok(LoadOutcome::Unchanged(current.clone()));
        }
        let module_settings = settings.modules.settings_for(&name);
        if !module_settings.enabled {
            return Err(LoadError::new(
                file,
                Some(&name),
                LoadErrorKind::Disabled {
                    module: name.clone(),
                },
            ));
        }
        self.check_seq(file, &name, seq, &sha512, running.is_some(), &settings)?;
        let lib = Arc::new(loader::open(build)?);
        let mapped = self.mapped_builds.fetch_add(1, Ordering::Relaxed) + 1;
        let (builds, generation_no) = {
            let mut history = lock(&self.history);
            let h = history.entry(name.clone()).or_default();
            h.builds += 1;
            (h.builds, h.last_generation + 1)
        };
        let generation = self
            .start(lib.clone(), generation_no, &settings)
            .map_err(|reason| {
                LoadError::new(
                    file,
                    Some(&name),
                    LoadErrorKind::Start(format!("on_load failed: {reason}")),
                )
            })?;
        self.seqs
            .accept(&name, seq)
            .map_err(|e| LoadError::new(file, Some(&name), LoadErrorKind::Rollback(e)))?;
        {
            let mut history = lock(&self.history);
            let h = history.entry(name.clone()).or_default();
            h.last_generation = generation_no;
            h.last_error = None;
            h.accepted = Some((seq, sha512));
        }
        let previous = write(&self.entries).insert(name.clone(), generation.clone());
        write(&self.refused).remove(file);
        let envelope = &lib.envelope;
        let (ms, rss) = (began.elapsed().as_millis(), rss_mib());
        match &previous {
            Some(old) => tracing::info!(
                module = %name, version = %envelope.version, seq, generation = generation_no,
                key_id = %envelope.key_id, file = %file.display(),
                "new build swapped in: generation {generation_no} (seq {seq}) now serves {name}, generation {} (seq {}) is draining; verified, loaded and started in {ms} ms; {builds} build(s) of {name} mapped, {mapped} in all, RSS {rss} MiB",
                old.generation, old.seq
            ),
            None => tracing::info!(
                module = %name, version = %envelope.version, seq, generation = generation_no,
                key_id = %envelope.key_id, file = %file.display(),
                "module loaded and serving (verified, loaded and started in {ms} ms; {builds} build(s) of it mapped, {mapped} in all, RSS {rss} MiB)"
            ),
        }
        if mapped == MAPPED_BUILDS_WARNING
            || (mapped > MAPPED_BUILDS_WARNING && mapped.is_multiple_of(100))
        {
            tracing::warn!(
                mapped,
                "{mapped} module builds are mapped in this process (RSS {rss} MiB); libraries are never unloaded, so restart modhost at a quiet moment to release them"
            );
        }
        if let Some(old) = previous {
            self.retire(old, format!("replaced by seq {seq}"));
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(LoadOutcome::Loaded(generation))
    }

    /// The rollback guard. A `seq` equal to the high-water mark is accepted
    /// only when nothing of the module runs and the build is the one this
    /// process accepted at that mark (or it accepted none: a restart with
    /// the same files must load them again). A different build under the
    /// same `seq` while one serves is refused like a lower one.
    fn check_seq(
        &self,
        file: &Path,
        name: &str,
        seq: u64,
        sha512: &[u8; 64],
        running: bool,
        settings: &RuntimeSettings,
    ) -> Result<(), LoadError> {
        match self.seqs.check(name, seq, settings.modules.allow_rollback) {
            Ok(()) => Ok(()),
            Err(SeqError::Rollback { highest, .. })
                if highest == seq
                    && !running
                    && lock(&self.history)
                        .get(name)
                        .and_then(|h| h.accepted)
                        .is_none_or(|(s, h)| s != seq || h == *sha512) =>
            {
                Ok(())
            }
            Err(e) => Err(LoadError::new(file, Some(name), e)),
        }
    }

    fn start(
        &self,
        lib: Arc<LoadedLibrary>,
        generation: u64,
        settings: &RuntimeSettings,
    ) -> Result<Arc<Generation>, String> {
        let module_settings = settings.modules.settings_for(&lib.envelope.module);
        let services = self
            .services
            .get()
            .cloned()
            .ok_or_else(|| "host services not ready".to_owned())?;
        Generation::start(
            lib,
            StartOptions {
                generation,
                config: module_settings.config.clone(),
                queue: settings.queue,
                call_timeout: module_settings
                    .call_timeout
                    .unwrap_or(settings.call_timeout),
                publishes_per_second: module_settings
                    .publishes_per_second
                    .unwrap_or(DEFAULT_PUBLISHES_PER_SECOND),
            },
            services,
        )
    }

    /// Starts a fresh instance of `name` from the library its current
    /// generation runs (no file is read or verified again), swaps it in and
    /// retires the old one. This is how an operator brings back a degraded
    /// module: the old instance thread may be stuck for good; it is left
    /// behind, counted and logged, and new calls go to the fresh instance.
    pub fn reset(&self, name: &str) -> Result<Arc<Generation>, ResetError> {
        let _serial = lock(&self.load_lock);
        let old = self
            .get(name)
            .ok_or_else(|| ResetError::NotLoaded(name.to_owned()))?;
        let settings = read(&self.settings).clone();
        let generation_no = lock(&self.history)
            .get(name)
            .map_or(old.generation, |h| h.last_generation)
            + 1;
        let generation = self
            .start(old.library.clone(), generation_no, &settings)
            .map_err(|reason| ResetError::StartFailed {
                module: name.to_owned(),
                reason,
            })?;
        {
            let mut history = lock(&self.history);
            let h = history.entry(name.to_owned()).or_default();
            h.last_generation = generation_no;
            h.last_error = None;
        }
        write(&self.entries).insert(name.to_owned(), generation.clone());
        tracing::info!(
            module = %name, generation = generation_no, seq = old.seq,
            "module reset by an operator: generation {generation_no} now serves from the same verified build (seq {}); generation {} (was {}) is drained, or left behind if it is stuck",
            old.seq, old.generation, old.state().as_str()
        );
        self.retire(old, "reset by an operator".to_owned());
        self.changes.send_modify(|n| *n += 1);
        Ok(generation)
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

    /// Applies a new config to the modules: call timeouts, module config
    /// tables (sent to the running instance, whose `on_config` decides),
    /// modules switched off (deregistered) or on (their file loaded), and
    /// the verify key folders. Queue sizes apply to generations started
    /// from now on.
    pub fn apply_settings(&self, new: RuntimeSettings) {
        let _serial = lock(&self.load_lock);
        let old = std::mem::replace(&mut *write(&self.settings), new.clone());
        if old.modules.verify_keys != new.modules.verify_keys {
            match self.reload_keys() {
                Ok(n) => {
                    tracing::info!("verify keys read from the new folders: keys for {n} module(s)")
                }
                Err(e) => tracing::warn!("verify keys: {e}; the keys read before stay in use"),
            }
        }
        for g in self.running() {
            let now = new.modules.settings_for(&g.name);
            if !now.enabled {
                let file = g.file.clone();
                if self.remove_locked(&g.name, "disabled in config.toml") {
                    write(&self.refused).insert(
                        file,
                        Refusal {
                            module: Some(g.name.clone()),
                            error: LoadErrorKind::Disabled {
                                module: g.name.clone(),
                            }
                            .to_string(),
                            at: SystemTime::now(),
                            disabled: true,
                        },
                    );
                }
                continue;
            }
            let timeout = now.call_timeout.unwrap_or(new.call_timeout);
            if timeout.as_millis() as u64 != g.call_timeout_ms() {
                g.set_call_timeout(timeout);
                tracing::info!(module = %g.name, "module call timeout is now {} ms", timeout.as_millis());
            }
            let budget = now
                .publishes_per_second
                .unwrap_or(DEFAULT_PUBLISHES_PER_SECOND);
            if budget != g.publishes_per_second() {
                g.set_publishes_per_second(budget);
                tracing::info!(module = %g.name, "module may now publish {budget} messages per second");
            }
            if old.modules.settings_for(&g.name).config != now.config {
                if g.reconfigure(&now.config) {
                    tracing::info!(module = %g.name, generation = g.generation, "module sent its new config ([modules.{}] changed)", g.name);
                } else {
                    tracing::warn!(module = %g.name, generation = g.generation, "module could not be sent its new config (its queue is full or it stopped); its next build or a reset starts with it");
                }
            }
        }
        let parked: Vec<PathBuf> = read(&self.refused)
            .iter()
            .filter(|(_, r)| {
                r.disabled
                    && r.module
                        .as_deref()
                        .is_some_and(|m| new.modules.settings_for(m).enabled)
            })
            .map(|(file, _)| file.clone())
            .collect();
        for file in parked {
            if !file.exists() {
                write(&self.refused).remove(&file);
                continue;
            }
            tracing::info!(file = %file.display(), "module enabled in config.toml: loading it");
            if let Err(e) = self.load_locked(&file) {
                self.refuse(&file, &e);
            }
        }
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

    /// Rows for `GET /api/modules`: running modules, then refused files.
    pub fn list(&self) -> Vec<ModuleInfo> {
        let history = lock(&self.history);
        let stuck = |name: &str| {
            history
                .get(name)
                .map_or(0, |h| h.stuck_threads.load(Ordering::Relaxed))
        };
        let builds = |name: &str| history.get(name).map_or(0, |h| h.builds);
        let last_error = |name: &str| history.get(name).and_then(|h| h.last_error.clone());
        let mut rows: Vec<ModuleInfo> = self
            .running()
            .into_iter()
            .map(|g| ModuleInfo {
                name: g.name.clone(),
                version: Some(g.manifest.version.to_string()),
                seq: Some(g.seq),
                generation: Some(g.generation),
                state: g.state().as_str().to_owned(),
                file: g.file.display().to_string(),
                error: None,
                loaded_at: Some(unix_secs(g.loaded_at)),
                generations: builds(&g.name),
                restarts: g.restarts(),
                timeouts: g.timeouts(),
                stuck_threads: stuck(&g.name),
                last_error: last_error(&g.name),
            })
            .collect();
        for (file, refusal) in read(&self.refused).iter() {
            let name = refusal.module.clone().unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            rows.push(ModuleInfo {
                version: None,
                seq: None,
                generation: None,
                state: if refusal.disabled {
                    "disabled"
                } else {
                    "refused"
                }
                .into(),
                file: file.display().to_string(),
                error: Some(refusal.error.clone()),
                loaded_at: Some(unix_secs(refusal.at)),
                generations: builds(&name),
                restarts: 0,
                timeouts: 0,
                stuck_threads: stuck(&name),
                last_error: Some(refusal.error.clone()),
                name,
            });
        }
        rows
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

/// This process's resident memory in MiB (0 where `/proc` is unavailable).
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
