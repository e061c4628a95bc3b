//! Module name → running generation, plus refused builds, for the broker and
//! the admin API. Installing a new generation swaps it in and drains the
//! old one in the background.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, RwLock},
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;

use crate::{
    config::ModulesConfig,
    signing::{Keyring, SeqStore},
};

use super::{
    error::{LoadError, LoadErrorKind},
    generation::{GenState, Generation, StartOptions},
    loader::{self, LoadPolicy},
    services::HostServices,
};

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

struct Entry {
    current: Arc<Generation>,
    generations: u64,
    last_error: Option<String>,
}

struct Refusal {
    module: Option<String>,
    error: String,
    at: SystemTime,
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
    /// `running`, `draining`, `failed` or `refused`.
    pub state: String,
    /// The `.so` file.
    pub file: String,
    /// Why it was refused or failed.
    pub error: Option<String>,
    /// Unix seconds when it started serving.
    pub loaded_at: Option<u64>,
    /// Builds of this module loaded so far (each stays mapped).
    pub generations: u64,
    /// Restarts after panics in the current generation.
    pub restarts: u64,
    /// Calls answered with module-timeout by the current generation.
    pub timeouts: u64,
    /// The last refusal or failure for this module, if any.
    pub last_error: Option<String>,
}

/// All modules known to the host.
pub struct Registry {
    entries: RwLock<HashMap<String, Entry>>,
    refused: RwLock<BTreeMap<PathBuf, Refusal>>,
    draining: Mutex<Vec<Arc<Generation>>>,
    services: OnceLock<Arc<dyn HostServices>>,
    keyring: RwLock<Keyring>,
    seqs: SeqStore,
    settings: RwLock<RuntimeSettings>,
    changes: tokio::sync::watch::Sender<u64>,
    load_lock: Mutex<()>,
}

impl Registry {
    /// A registry with no modules yet.
    pub fn new(settings: RuntimeSettings, keyring: Keyring, seqs: SeqStore) -> Arc<Self> {
        Arc::new(Self {
            entries: RwLock::default(),
            refused: RwLock::default(),
            draining: Mutex::default(),
            services: OnceLock::new(),
            keyring: RwLock::new(keyring),
            seqs,
            settings: RwLock::new(settings),
            changes: tokio::sync::watch::channel(0).0,
            load_lock: Mutex::new(()),
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

    /// The running generation of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Generation>> {
        read(&self.entries).get(name).map(|e| e.current.clone())
    }

    /// Every running generation, by name.
    pub fn running(&self) -> Vec<Arc<Generation>> {
        let mut all: Vec<_> = read(&self.entries)
            .values()
            .map(|e| e.current.clone())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
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
    /// `Err` carries the refusal reason (also logged and listed).
    pub fn load_file(&self, file: &Path) -> Result<Arc<Generation>, String> {
        let _serial = self.load_lock.lock().unwrap_or_else(|p| p.into_inner());
        match self.try_load(file) {
            Ok(generation) => {
                write(&self.refused).remove(file);
                Ok(generation)
            }
            Err(error) => {
                let module = error.module.clone();
                tracing::error!(
                    module = module.as_deref().unwrap_or("?"),
                    file = %file.display(),
                    "module refused: {error}"
                );
                if let Some(name) = &module
                    && let Some(entry) = write(&self.entries).get_mut(name)
                {
                    entry.last_error = Some(error.to_string());
                    tracing::warn!(module = %name, generation = entry.current.generation, "the running build keeps serving");
                }
                write(&self.refused).insert(
                    file.to_owned(),
                    Refusal {
                        module,
                        error: error.to_string(),
                        at: SystemTime::now(),
                    },
                );
                Err(error.to_string())
            }
        }
    }

    fn try_load(&self, file: &Path) -> Result<Arc<Generation>, LoadError> {
        let settings = read(&self.settings).clone();
        let lib = {
            let keyring = read(&self.keyring);
            let policy = LoadPolicy {
                keyring: &keyring,
                seqs: &self.seqs,
                allow_rollback: settings.modules.allow_rollback,
            };
            loader::load(file, &policy)?
        };
        let name = lib.envelope.module.clone();
        let module_settings = settings.modules.settings_for(&name);
        if !module_settings.enabled {
            return Err(LoadError::new(
                file,
                Some(&name),
                LoadErrorKind::Start(format!(
                    "module {name} is disabled in config ([modules.{name}] enabled = false)"
                )),
            ));
        }
        let generation_no = read(&self.entries).get(&name).map_or(0, |e| e.generations) + 1;
        let services = self.services.get().cloned().ok_or_else(|| {
            LoadError::new(
                file,
                Some(&name),
                LoadErrorKind::Start("host services not ready".into()),
            )
        })?;
        let started = Instant::now();
        let generation = Generation::start(
            &lib,
            StartOptions {
                generation: generation_no,
                config: module_settings.config.clone(),
                queue: settings.queue,
                call_timeout: module_settings
                    .call_timeout
                    .unwrap_or(settings.call_timeout),
            },
            services,
        )
        .map_err(|reason| {
            LoadError::new(
                file,
                Some(&name),
                LoadErrorKind::Start(format!("on_load failed: {reason}")),
            )
        })?;
        self.seqs
            .accept(&name, lib.envelope.seq)
            .map_err(|e| LoadError::new(file, Some(&name), LoadErrorKind::Rollback(e)))?;
        let previous = {
            let mut entries = write(&self.entries);
            let entry = Entry {
                current: generation.clone(),
                generations: generation_no,
                last_error: None,
            };
            entries.insert(name.clone(), entry).map(|old| old.current)
        };
        tracing::info!(
            module = %name,
            version = %lib.envelope.version,
            seq = lib.envelope.seq,
            generation = generation_no,
            key_id = %lib.envelope.key_id,
            file = %file.display(),
            "module loaded and serving (started in {} ms; {} build(s) of it mapped)",
            started.elapsed().as_millis(),
            generation_no
        );
        if let Some(old) = previous {
            self.retire(old, "replaced by a new build");
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(generation)
    }

    /// Deregisters `name`: new calls get `unknown-module`; calls it already
    /// accepted are still answered.
    pub fn remove(&self, name: &str) -> bool {
        let removed = write(&self.entries).remove(name);
        match removed {
            Some(entry) => {
                self.retire(entry.current, "its files were removed");
                self.changes.send_modify(|n| *n += 1);
                true
            }
            None => false,
        }
    }

    /// Drains `old` in the background and logs how it ended.
    fn retire(&self, old: Arc<Generation>, why: &str) {
        old.begin_drain();
        lock(&self.draining).push(old.clone());
        let deadline = Duration::from_millis(old.call_timeout_ms()) + Duration::from_secs(5);
        let why = why.to_owned();
        let _ = std::thread::Builder::new()
            .name(format!("drain-{}", old.name))
            .spawn(move || {
                let in_flight = old.in_flight();
                if old.wait_stopped(deadline) {
                    tracing::info!(
                        module = %old.name, generation = old.generation, in_flight,
                        "old build drained and stopped ({why}); its library stays mapped"
                    );
                } else {
                    tracing::warn!(
                        module = %old.name, generation = old.generation,
                        "old build did not stop within {} s ({why}); its remaining calls got module-unavailable and its thread is left behind",
                        deadline.as_secs()
                    );
                }
            });
    }

    /// Answers overdue calls of every generation with `module-timeout`.
    pub fn expire_overdue(&self) {
        let now = Instant::now();
        for generation in self.running() {
            generation.expire_overdue(now);
        }
        let mut draining = lock(&self.draining);
        draining.retain(|g| {
            g.expire_overdue(now);
            !matches!(g.state(), GenState::Stopped | GenState::Failed) || g.in_flight() > 0
        });
    }

    /// Rows for `GET /api/modules`: running modules, then refused files.
    pub fn list(&self) -> Vec<ModuleInfo> {
        let mut rows: Vec<ModuleInfo> = {
            let entries = read(&self.entries);
            let mut names: Vec<&String> = entries.keys().collect();
            names.sort();
            names
                .into_iter()
                .map(|name| {
                    let e = &entries[name];
                    let g = &e.current;
                    ModuleInfo {
                        name: name.clone(),
                        version: Some(g.manifest.version.to_string()),
                        seq: Some(g.seq),
                        generation: Some(g.generation),
                        state: g.state().as_str().to_owned(),
                        file: g.file.display().to_string(),
                        error: None,
                        loaded_at: Some(unix_secs(g.loaded_at)),
                        generations: e.generations,
                        restarts: g.restarts(),
                        timeouts: g.timeouts(),
                        last_error: e.last_error.clone(),
                    }
                })
                .collect()
        };
        for (file, refusal) in read(&self.refused).iter() {
            let name = refusal.module.clone().unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            rows.push(ModuleInfo {
                name,
                version: None,
                seq: None,
                generation: None,
                state: "refused".into(),
                file: file.display().to_string(),
                error: Some(refusal.error.clone()),
                loaded_at: Some(unix_secs(refusal.at)),
                generations: 0,
                restarts: 0,
                timeouts: 0,
                last_error: Some(refusal.error.clone()),
            });
        }
        rows
    }

    /// Stops every module (host shutdown), waiting up to `deadline`.
    pub fn shutdown(&self, deadline: Duration) {
        let all: Vec<Arc<Generation>> = write(&self.entries)
            .drain()
            .map(|(_, e)| e.current)
            .collect();
        for g in &all {
            g.begin_drain();
        }
        for g in &all {
            if !g.wait_stopped(deadline) {
                tracing::warn!(module = %g.name, "module did not stop within {} s at shutdown", deadline.as_secs());
            }
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|p| p.into_inner())
}
