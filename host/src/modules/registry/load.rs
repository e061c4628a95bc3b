//! Loading builds into the registry: verify, start, swap in, retire the
//! old generation; refusals and the rollback guard; operator resets, which
//! swap in a fresh instance of the same build.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::{Instant, SystemTime},
};

use super::{
    super::{
        error::{LoadError, LoadErrorKind},
        generation::{Generation, StartOptions},
        loader::{self, LoadedLibrary},
        sink::DEFAULT_PUBLISHES_PER_SECOND,
    },
    LoadOutcome, ModuleEvent, Refusal, Registry, ResetError, RuntimeSettings, lock, read, write,
};

/// Libraries are never unloaded (abi_stable cannot), so every build loaded
/// stays mapped until the process exits. Past this many in one process the
/// load log recommends a restart.
const MAPPED_BUILDS_WARNING: u64 = 200;

impl Registry {
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
        let disabled = matches!(
            *error.kind,
            LoadErrorKind::Disabled { .. } | LoadErrorKind::DisabledByOperator { .. }
        );
        Self::count(&self.refusals, error.kind.reason());
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
            let mut history = lock(&self.history);
            let h = history.entry(name.clone()).or_default();
            h.last_error = Some(error.to_string());
            let what = if disabled { "disabled" } else { "refused" };
            h.record(ModuleEvent::new(what, None, &error.to_string()));
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

    pub(super) fn load_locked(&self, file: &Path) -> Result<LoadOutcome, LoadError> {
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
        if self.disabled_by_operator(&name) {
            return Err(LoadError::new(
                file,
                Some(&name),
                LoadErrorKind::DisabledByOperator {
                    module: name.clone(),
                },
            ));
        }
        self.check_seq(file, &name, seq, &sha512, &settings)?;
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
            .accept(&name, seq, &sha512)
            .map_err(|e| LoadError::new(file, Some(&name), LoadErrorKind::Rollback(e)))?;
        let previous = write(&self.entries).insert(name.clone(), generation.clone());
        {
            let mut history = lock(&self.history);
            let h = history.entry(name.clone()).or_default();
            h.last_generation = generation_no;
            h.last_error = None;
            let what = if previous.is_some() { "swap" } else { "load" };
            h.record(ModuleEvent::new(
                what,
                Some(&generation),
                &file.display().to_string(),
            ));
        }
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
        Self::count(
            &self.starts,
            if previous.is_some() { "swap" } else { "load" },
        );
        if let Some(old) = previous {
            self.retire(old, format!("replaced by seq {seq}"));
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(LoadOutcome::Loaded(generation))
    }

    /// The rollback guard: a `seq` above the mark, or the very build
    /// accepted at the mark (a restart with the same files), or anything
    /// with `allow_rollback`.
    fn check_seq(
        &self,
        file: &Path,
        name: &str,
        seq: u64,
        sha512: &[u8; 64],
        settings: &RuntimeSettings,
    ) -> Result<(), LoadError> {
        self.seqs
            .check(name, seq, sha512, settings.modules.allow_rollback)
            .map_err(|e| LoadError::new(file, Some(name), e))
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
            let was = format!(
                "by an operator; generation {} was {}",
                old.generation,
                old.state().as_str()
            );
            h.record(ModuleEvent::new("reset", Some(&generation), &was));
        }
        write(&self.entries).insert(name.to_owned(), generation.clone());
        tracing::info!(
            module = %name, generation = generation_no, seq = old.seq,
            "module reset by an operator: generation {generation_no} now serves from the same verified build (seq {}); generation {} (was {}) is drained, or left behind if it is stuck",
            old.seq, old.generation, old.state().as_str()
        );
        Self::count(&self.starts, "reset");
        self.retire(old, "reset by an operator".to_owned());
        self.changes.send_modify(|n| *n += 1);
        Ok(generation)
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
