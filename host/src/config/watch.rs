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
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use notify_debouncer_full::{
    DebounceEventResult, new_debouncer,
    notify::{
        EventKind, RecursiveMode,
        event::{AccessKind, AccessMode, ModifyKind},
    },
};
use serde::Serialize;

use super::{Config, ConfigError};

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

enum Msg {
    Fs(DebounceEventResult),
    Stop,
}

/// The running watcher; stops when [`ConfigWatcher::stop`] is called or it
/// is dropped.
pub struct ConfigWatcher {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

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
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let events = tx.clone();
        let thread = std::thread::Builder::new()
            .name("config-watcher".into())
            .spawn(move || {
                let debouncer = new_debouncer(DEBOUNCE, None, move |r| {
                    let _ = events.send(Msg::Fs(r));
                })
                .map_err(|e| format!("cannot start a file watcher: {e}"))
                .and_then(|mut d| {
                    d.watch(&dir, RecursiveMode::NonRecursive)
                        .map(|()| d)
                        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))
                });
                let _debouncer = match debouncer {
                    Ok(d) => {
                        let _ = ready_tx.send(Ok(()));
                        d
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                tracing::info!(file = %file.display(), "watching config.toml: valid edits are applied live");
                while let Ok(msg) = rx.recv() {
                    let mut touched = false;
                    for msg in std::iter::once(msg).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                        match msg {
                            Msg::Stop => return,
                            Msg::Fs(Ok(events)) => {
                                touched |= events.iter().any(|e| {
                                    relevant(&e.kind)
                                        && e.paths.iter().any(|p| p.file_name() == Some(&name))
                                });
                            }
                            Msg::Fs(Err(errors)) => {
                                for e in errors {
                                    tracing::warn!(file = %file.display(), "file watcher error: {e}; an edit may be noticed late");
                                }
                            }
                        }
                    }
                    if touched {
                        wait_until_stable(&file);
                        on_change(super::load(&file));
                    }
                }
            })
            .map_err(|e| format!("cannot start the config watcher thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(ConfigWatcher {
                tx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("the config watcher thread ended before it started".into()),
        }
    }

    /// Stops watching; waits for a reload in progress (blocking).
    pub fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
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
