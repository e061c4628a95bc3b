//! The rows of `GET /api/modules`, one per module name: running
//! generations, then modules that only have refused or disabled files.
//! Every file of the modules folder the host does not run from is in some
//! row's `refused_builds`, with its reason: a refused update of a running
//! module in that module's row, not in a second row of the same name.
//! Each row carries the module's recent history ([`ModuleEvent`]s).

use std::{collections::BTreeMap, sync::atomic::Ordering, time::SystemTime};

use serde::Serialize;

use super::{super::generation::Generation, Registry, lock, read};

/// Events of one module's history kept (older ones are forgotten).
pub const MAX_EVENTS: usize = 20;

/// Something that happened to a module: what the history of generations
/// in `GET /api/modules` and the admin page is made of.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleEvent {
    /// Unix seconds.
    pub at: u64,
    /// `load`, `swap`, `reset`, `refused`, `disabled`, `removed` or
    /// `enabled`.
    pub event: &'static str,
    /// The generation it started or ended, when there is one.
    pub generation: Option<u64>,
    /// That generation's signed seq.
    pub seq: Option<u64>,
    /// The file, the reason, or who did it.
    pub detail: String,
}

impl ModuleEvent {
    pub(super) fn new(event: &'static str, generation: Option<&Generation>, detail: &str) -> Self {
        ModuleEvent {
            at: unix_secs(SystemTime::now()),
            event,
            generation: generation.map(|g| g.generation),
            seq: generation.map(|g| g.seq),
            detail: detail.to_owned(),
        }
    }
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
    /// Commands declared non-blocking whose calls run on the caller's
    /// thread in the current generation.
    pub inline_commands: Vec<String>,
    /// Commands declared non-blocking that overran the inline budget and
    /// went back to the instance thread for the current generation.
    pub demoted_commands: Vec<String>,
    /// Files of the modules folder filed under this module that the host
    /// does not run from, newest first: refused builds (a running module's
    /// refused updates too) and disabled ones.
    pub refused_builds: Vec<RefusedBuild>,
    /// Its recent history, newest first (at most [`MAX_EVENTS`]).
    pub history: Vec<ModuleEvent>,
}

/// A file of the modules folder that is not loaded, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedBuild {
    /// The `.so` file.
    pub file: String,
    /// `refused` or `disabled`.
    pub state: String,
    /// Why.
    pub error: String,
    /// Unix seconds when it was refused.
    pub at: u64,
}

impl Registry {
    /// Rows for `GET /api/modules`: running modules, then the modules that
    /// only have refused files; one row per name.
    pub fn list(&self) -> Vec<ModuleInfo> {
        let history = lock(&self.history);
        let stuck = |name: &str| {
            history
                .get(name)
                .map_or(0, |h| h.stuck_threads.load(Ordering::Relaxed))
        };
        let mapped = |name: &str| history.get(name).map_or(0, |h| h.builds);
        let last_error = |name: &str| history.get(name).and_then(|h| h.last_error.clone());
        let events = |name: &str| {
            history
                .get(name)
                .map(|h| h.events.iter().rev().cloned().collect())
                .unwrap_or_default()
        };
        let mut rows: Vec<ModuleInfo> = self
            .running()
            .into_iter()
            .map(|g| {
                let (inline_commands, demoted_commands) = g.inline_commands();
                ModuleInfo {
                    name: g.name.clone(),
                    version: Some(g.manifest.version.to_string()),
                    seq: Some(g.seq),
                    generation: Some(g.generation),
                    state: g.state().as_str().to_owned(),
                    file: g.file.display().to_string(),
                    error: None,
                    loaded_at: Some(unix_secs(g.loaded_at)),
                    generations: mapped(&g.name),
                    restarts: g.restarts(),
                    timeouts: g.timeouts(),
                    stuck_threads: stuck(&g.name),
                    last_error: last_error(&g.name),
                    inline_commands,
                    demoted_commands,
                    refused_builds: Vec::new(),
                    history: events(&g.name),
                }
            })
            .collect();
        // Refused files by the module they are filed under: the signed
        // name, or the file name when the envelope could not be read.
        let mut refused: BTreeMap<String, Vec<RefusedBuild>> = BTreeMap::new();
        for (file, refusal) in read(&self.refused).iter() {
            let name = refusal.module.clone().unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            refused.entry(name).or_default().push(RefusedBuild {
                file: file.display().to_string(),
                state: if refusal.disabled {
                    "disabled"
                } else {
                    "refused"
                }
                .into(),
                error: refusal.error.clone(),
                at: unix_secs(refusal.at),
            });
        }
        for builds in refused.values_mut() {
            builds.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.file.cmp(&b.file)));
        }
        for row in &mut rows {
            row.refused_builds = refused.remove(&row.name).unwrap_or_default();
        }
        for (name, builds) in refused {
            let newest = builds[0].clone();
            rows.push(ModuleInfo {
                version: None,
                seq: None,
                generation: None,
                state: newest.state,
                file: newest.file,
                error: Some(newest.error.clone()),
                loaded_at: Some(newest.at),
                generations: mapped(&name),
                restarts: 0,
                timeouts: 0,
                stuck_threads: stuck(&name),
                last_error: Some(newest.error),
                inline_commands: Vec::new(),
                demoted_commands: Vec::new(),
                refused_builds: builds,
                history: events(&name),
                name,
            });
        }
        rows
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
