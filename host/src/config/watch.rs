//! Watches config.toml and hands each new version of it, read and
//! validated, to a callback (DESIGN §4).
//!
//! The file's folder is watched, not the file: editors and deploy tools
//! save by writing a new file and renaming it over the old one, which
//! replaces the inode a file watch would be attached to. Events for other
//! files in the folder are ignored. As for modules, an event is a hint: the
//! file is read once it has stopped changing, and a half-written version
//! simply fails validation and is followed by the event of the next write.
//!
//! What to do with a new config (apply it, or keep the old one and log why)
//! is the caller's business: see `server.rs`. [`ReloadStatus`] records the
//! outcome for `GET /api/config`.

use std::{
    ffi::OsStr,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use notify_debouncer_full::notify::{
    EventKind,
    event::{AccessKind, AccessMode, ModifyKind},
};
use serde::Serialize;

use super::{Config, ConfigError};
use crate::util::watch::{Events, FileWatcher};

/// Quiet time before a burst of events is handed over.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Gap between the two looks that decide whether the file is still changing.
const STABLE_CHECK: Duration = Duration::from_millis(50);

/// What the last reloads of config.toml did, for the admin API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// The watched file; `None` when the host runs on the embedded defaults.
    pub file: Option<String>,
    /// Whether the file is watched.
    pub watching: bool,
    /// New versions applied since start.
    pub applied: u64,
    /// Unix seconds of the last one applied.
    pub applied_at: Option<u64>,
    /// What the last applied version changed, one line each.
    pub last_changes: Vec<String>,
    /// Why the newest version on disk was not applied (`file:line:col:
    /// message`), or `None` if it was.
    pub last_error: Option<String>,
    /// The line of that error, when known.
    pub last_error_line: Option<usize>,
    /// Settings that differ on disk but only change with a restart.
    pub restart_pending: Vec<String>,
}

/// `message` on one line: the `hint:` line of a config error joined with `; `.
pub fn one_line(message: &str) -> String {
    message.lines().collect::<Vec<_>>().join("; ")
}

/// The running watcher; stops when [`ConfigWatcher::stop`] is called or it
/// is dropped.
pub struct ConfigWatcher(FileWatcher);

impl ConfigWatcher {
    /// Watches `file` and calls `on_change` (on the watcher's own thread)
    /// with every new version of it, read and validated by
    /// [`super::load`]. `Err` if its folder cannot be watched.
    pub fn start(
        file: PathBuf,
        mut on_change: impl FnMut(Result<Config, ConfigError>) + Send + 'static,
    ) -> Result<ConfigWatcher, String> {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = file
            .file_name()
            .ok_or_else(|| format!("{} names no file", file.display()))?
            .to_owned();
        // The debouncer only has to live as long as the loop.
        let run = move |events: Events, _debouncer| {
            tracing::info!(file = %file.display(), "watching config.toml: valid edits are applied live");
            watch_loop(&file, &name, &events, &mut on_change);
        };
        FileWatcher::start(
            "config-watcher",
            "config watcher thread",
            dir,
            DEBOUNCE,
            run,
        )
        .map(ConfigWatcher)
    }

    /// Stops watching; waits for a reload in progress (blocking).
    pub fn stop(self) {
        self.0.stop();
    }
}

/// Until stopped: reads `file` again after each burst of events that
/// touches a file called `name`, and hands the outcome to `on_change`.
fn watch_loop(
    file: &Path,
    name: &OsStr,
    events: &Events,
    on_change: &mut impl FnMut(Result<Config, ConfigError>),
) {
    loop {
        let arrived = events.wait(None);
        for e in arrived.errors {
            tracing::warn!(file = %file.display(), "file watcher error: {e}; an edit may be noticed late");
        }
        if arrived.stop {
            return;
        }
        let touched = arrived
            .events
            .iter()
            .any(|e| relevant(&e.kind) && e.paths.iter().any(|p| p.file_name() == Some(name)));
        if touched {
            wait_until_stable(file);
            on_change(super::load(file));
        }
    }
}

/// Events that may mean new content. Opens are ignored (reading the file
/// causes them), and so are metadata changes.
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

/// Waits (a little) until size, mtime and inode of `file` hold still.
fn wait_until_stable(file: &Path) {
    let stamp = |f: &Path| {
        std::fs::metadata(f)
            .ok()
            .map(|m| (m.len(), m.ino(), m.mtime(), m.mtime_nsec()))
    };
    for _ in 0..20 {
        let before = stamp(file);
        std::thread::sleep(STABLE_CHECK);
        if stamp(file) == before {
            return;
        }
    }
}
