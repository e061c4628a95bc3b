//! Watches the modules folder (and the verify key folders) and turns file
//! events into rescans of the module files they touch (DESIGN §4).
//!
//! An event is only a hint: it says "look at `echo.so` again", never what
//! happened. Publishers copy files in place (`cp` writes into the file for a
//! while), rename finished files over old ones, and deliver the `.sig` before
//! or after the `.so`. So a rescan looks at what is on disk:
//!
//! 1. `.so` or `.sig` missing → the module loaded from that file, if any, is
//!    deregistered (`unknown-module` for new calls, offers re-sent); a `.so`
//!    still alone after [`SETTLE`] is refused as unsigned;
//! 2. either file still changing (size, mtime, ctime or inode differ across
//!    a short re-check) → try again shortly;
//! 3. otherwise verify and load ([`Registry::try_load_file`]): a new build
//!    swaps in; the build already serving is a no-op; a refused build leaves
//!    the running one serving.
//!
//! A file whose signature check fails shortly after it changed may be a copy
//! in progress that paused between chunks: it is retried quietly (debug log)
//! until it has been left alone for [`SETTLE`], and only then refused with an
//! error line and a row in `/api/modules`. Any other refusal (rollback, ABI,
//! a panicking start) is of a complete build and is reported at once.
//!
//! Everything runs on one plain thread: loading a library blocks, and must
//! never run on a tokio worker.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use notify_debouncer_full::{
    DebouncedEvent,
    notify::{
        EventKind, RecursiveMode,
        event::{AccessKind, AccessMode, ModifyKind},
    },
};

use crate::signing::{SignatureError, sig_path};
use crate::util::watch::{Debouncer, Events, FileWatcher};

use super::{
    error::{LoadError, LoadErrorKind},
    registry::{LoadOutcome, Registry},
};

/// Quiet time before a burst of events on a path is handed over (a `cp` of
/// a large file produces a stream of modify events).
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Gap between the two looks that decide whether a file is still changing.
const STABLE_CHECK: Duration = Duration::from_millis(100);

/// How soon a file found changing is looked at again.
const RETRY: Duration = Duration::from_millis(300);

/// A file that fails verification within this long of its last change is
/// presumed to be still in transit and retried quietly; after that it is
/// refused out loud.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Longest wait between two passes of the loop (new key folders to watch).
const IDLE: Duration = Duration::from_secs(1);

/// The running watcher; stops when [`ModuleWatcher::stop`] is called or it
/// is dropped.
pub struct ModuleWatcher(FileWatcher);

impl ModuleWatcher {
    /// Starts watching the registry's modules folder. `Err` if the folder
    /// cannot be watched (the host then runs without hot reload).
    pub fn start(registry: Arc<Registry>) -> Result<ModuleWatcher, String> {
        let dir = registry.settings().modules.dir;
        let scanner = Scanner {
            registry,
            dir: dir.clone(),
            key_dirs: BTreeSet::new(),
            retry: BTreeMap::new(),
        };
        let run = move |events: Events, debouncer| scanner.run(&events, debouncer);
        FileWatcher::start("module-watcher", "watcher thread", dir, DEBOUNCE, run)
            .map(ModuleWatcher)
    }

    /// Stops watching and waits for a rescan in progress to finish
    /// (blocking: call it from a blocking context).
    pub fn stop(self) {
        self.0.stop();
    }
}

/// What one pass has to look at.
#[derive(Default)]
struct Batch {
    files: BTreeSet<PathBuf>,
    keys_changed: bool,
}

enum Next {
    Done,
    RetryAt(Instant),
}

struct Scanner {
    registry: Arc<Registry>,
    dir: PathBuf,
    key_dirs: BTreeSet<PathBuf>,
    retry: BTreeMap<PathBuf, Instant>,
}

impl Scanner {
    fn run(mut self, events: &Events, mut debouncer: Debouncer) {
        tracing::info!(dir = %self.dir.display(), "watching the modules folder: signed builds dropped there are loaded, replaced and removed live");
        self.watch_key_dirs(&mut debouncer);
        loop {
            let wait = self
                .retry
                .values()
                .min()
                .map_or(IDLE, |t| t.saturating_duration_since(Instant::now()))
                .min(IDLE);
            // Everything queued comes at once, to handle it in one pass.
            let arrived = events.wait(Some(wait));
            for e in arrived.errors {
                tracing::warn!(dir = %self.dir.display(), "file watcher error: {e}; a change may be noticed late");
            }
            if arrived.stop {
                return;
            }
            let mut batch = Batch::default();
            self.classify(&arrived.events, &mut batch);
            let now = Instant::now();
            let due: Vec<PathBuf> = self
                .retry
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(file, _)| file.clone())
                .collect();
            for file in due {
                self.retry.remove(&file);
                batch.files.insert(file);
            }
            self.handle(batch);
            self.watch_key_dirs(&mut debouncer);
        }
    }

    /// Maps events to the module files (`x.so` for `x.so` and `x.so.sig`)
    /// and key folders they touch. Opens are ignored (our own reads cause
    /// them), and so are metadata changes (reading may touch atime).
    fn classify(&self, events: &[DebouncedEvent], batch: &mut Batch) {
        for event in events {
            match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
                EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => continue,
                _ => {}
            }
            for path in &event.paths {
                if let Some(file) = self.module_file(path) {
                    batch.files.insert(file);
                } else if self
                    .key_dirs
                    .iter()
                    .any(|d| path == d || path.parent() == Some(d.as_path()))
                {
                    batch.keys_changed = true;
                }
            }
        }
    }

    /// `dir/x.so` for `dir/x.so` and `dir/x.so.sig`; hidden files (the
    /// temporary half of an atomic write) and anything else are ignored.
    fn module_file(&self, path: &Path) -> Option<PathBuf> {
        if path.parent() != Some(self.dir.as_path()) {
            return None;
        }
        let name = path.file_name()?.to_str()?;
        if name.starts_with('.') {
            return None;
        }
        let lib = name.strip_suffix(".sig").unwrap_or(name);
        lib.ends_with(".so").then(|| self.dir.join(lib))
    }

    fn handle(&mut self, mut batch: Batch) {
        if batch.keys_changed {
            match self.registry.reload_keys() {
                Ok(n) => tracing::info!(
                    "verify keys changed: keys for {n} module(s) are trusted now; looking at every module file again"
                ),
                Err(e) => tracing::warn!(
                    "verify keys changed but cannot be read: {e}; the keys read before stay in use"
                ),
            }
            batch.files.extend(so_files(&self.dir));
        } else if batch.files.is_empty() {
            return;
        } else if let Err(e) = self.registry.reload_keys() {
            // Every rescan reads the keys again, so a key added to a folder
            // that could not be watched still counts.
            tracing::debug!("verify keys not reread: {e}; the keys read before stay in use");
        }
        for file in batch.files {
            match self.rescan(&file) {
                Next::Done => {
                    self.retry.remove(&file);
                }
                Next::RetryAt(at) => {
                    self.retry.insert(file, at);
                }
            }
        }
    }

    fn rescan(&self, file: &Path) -> Next {
        let sig = sig_path(file);
        let (so_seen, sig_seen) = match (Stamp::of(file), Stamp::of(&sig)) {
            (Some(so), Some(sig)) => (so, sig),
            (so, _) => {
                if self.registry.file_gone(file).is_none() {
                    tracing::debug!(
                        file = %file.display(),
                        "waiting for both the .so and its .sig (missing: {})",
                        if so.is_some() { ".sig" } else { ".so" }
                    );
                }
                return match so {
                    Some(so) => self.unsigned(file, so),
                    None => Next::Done,
                };
            }
        };
        std::thread::sleep(STABLE_CHECK);
        let unchanged = || Stamp::of(file) == Some(so_seen) && Stamp::of(&sig) == Some(sig_seen);
        if !unchanged() {
            tracing::debug!(file = %file.display(), "still being written; looking again shortly");
            return Next::RetryAt(Instant::now() + RETRY);
        }
        match self.registry.try_load_file(file) {
            Ok(LoadOutcome::Loaded(_)) => Next::Done,
            Ok(LoadOutcome::Unchanged(g)) => {
                tracing::debug!(
                    module = %g.name, file = %file.display(),
                    "same build as generation {} (seq {}): nothing to do",
                    g.generation, g.seq
                );
                Next::Done
            }
            Err(error) => {
                if !unchanged() {
                    tracing::debug!(file = %file.display(), "changed while it was checked ({error}); looking again shortly");
                    return Next::RetryAt(Instant::now() + RETRY);
                }
                // Only a failed signature check can be a copy in progress;
                // a build that verified and then failed (rollback, ABI,
                // start) is complete, and loading it again would map
                // another copy of it for nothing.
                let age = so_seen.age().min(sig_seen.age());
                let in_transit = matches!(*error.kind, LoadErrorKind::Signature(_));
                if age < SETTLE && in_transit {
                    tracing::debug!(
                        file = %file.display(),
                        "not loadable yet ({error}); it changed {} ms ago and may still be in transit, so it is looked at again before it is refused",
                        age.as_millis()
                    );
                    return Next::RetryAt(Instant::now() + (SETTLE - age));
                }
                self.registry.refuse(file, &error);
                Next::Done
            }
        }
    }

    /// A `.so` without its `.sig`: the `.sig` may be on its way, so it is
    /// looked at again once the `.so` has settled; still alone then, it is
    /// refused (listed, so an operator sees the unsigned file).
    fn unsigned(&self, file: &Path, so: Stamp) -> Next {
        let age = so.age();
        if age < SETTLE {
            return Next::RetryAt(Instant::now() + (SETTLE - age));
        }
        let missing = SignatureError::MissingSignature {
            lib: file.to_owned(),
            sig: sig_path(file),
        };
        self.registry
            .refuse(file, &LoadError::new(file, None, missing));
        Next::Done
    }

    /// Watches the key folders the settings name now (they can change with
    /// config.toml); a folder that does not exist yet is tried again later.
    fn watch_key_dirs(&mut self, debouncer: &mut Debouncer) {
        let wanted: BTreeSet<PathBuf> = self
            .registry
            .settings()
            .modules
            .verify_keys
            .into_iter()
            .collect();
        for gone in self.key_dirs.difference(&wanted) {
            let _ = debouncer.unwatch(gone);
        }
        self.key_dirs.retain(|d| wanted.contains(d));
        for dir in wanted {
            if !self.key_dirs.contains(&dir)
                && dir.is_dir()
                && debouncer.watch(&dir, RecursiveMode::NonRecursive).is_ok()
            {
                self.key_dirs.insert(dir);
            }
        }
    }
}

/// Every `*.so` in `dir`, sorted.
fn so_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "so")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What tells one version of a file from the next: a rename brings a new
/// inode, an in-place write a new size or mtime, and a rename or `touch`
/// a new ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    inode: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: m.len(),
            inode: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// Time since the file last changed (zero if that is in the future).
    fn age(&self) -> Duration {
        let (secs, nanos) = self.mtime.max(self.ctime);
        let changed = SystemTime::UNIX_EPOCH
            + Duration::from_secs(secs.max(0) as u64)
            + Duration::from_nanos(nanos.max(0) as u64);
        SystemTime::now()
            .duration_since(changed)
            .unwrap_or(Duration::ZERO)
    }
}
