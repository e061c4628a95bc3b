//! The rows of `GET /api/modules`: running generations, then refused and
//! disabled files.

use std::{sync::atomic::Ordering, time::SystemTime};

use serde::Serialize;

use super::{Registry, lock, read};

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
}

impl Registry {
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
                    generations: builds(&g.name),
                    restarts: g.restarts(),
                    timeouts: g.timeouts(),
                    stuck_threads: stuck(&g.name),
                    last_error: last_error(&g.name),
                    inline_commands,
                    demoted_commands,
                }
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
                inline_commands: Vec::new(),
                demoted_commands: Vec::new(),
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
