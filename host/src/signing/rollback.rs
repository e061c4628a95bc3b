//! The rollback guard: the highest `seq` accepted per module, persisted.
//!
//! Without it, anyone who can drop files into `plugins/` could bring back an
//! old, correctly signed build with a known bug. The host refuses a `seq` at
//! or below the high-water mark unless the operator sets
//! `allow_rollback = true`.
//!
//! On disk: `<state_dir>/seq/<module>` holds the mark as decimal digits and
//! a newline, one small file per module, so modules never contend for one
//! file and a damaged file affects one module only. A write goes to a temp
//! file in the same folder, is fsynced, renamed over the target, and then
//! the folder is fsynced: after `kill -9` or a power cut at any point the
//! file holds either the old mark or the new one, never a mix. Leftover
//! temp files (`.<module>.tmp-*`) are ignored and cleaned up on open.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::envelope::{EnvelopeError, validate_module_name};
use crate::util::fs::{WriteError, write_atomically};
use crate::util::sync;

/// Why the rollback guard refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeqError {
    /// The signed `seq` is not above the highest accepted one.
    #[error(
        "module {module:?}: signed seq {seq} is not above the highest accepted seq {highest} \
         (rollback guard): sign the newer build with a higher `--seq`, or set \
         `allow_rollback = true` under [modules] to load an older build on purpose"
    )]
    Rollback {
        /// The module.
        module: String,
        /// The refused seq.
        seq: u64,
        /// The highest accepted seq.
        highest: u64,
    },
    /// A state file holds something other than a number.
    #[error(
        "rollback state file {} is corrupt ({reason}): it should hold the highest accepted seq \
         for the module; write that number into it, or delete it to accept any seq once",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The state folder or a state file could not be read or written.
    #[error("rollback state {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The state folder is writable by others, who could lower marks.
    #[error(
        "rollback state folder {} is group- or world-writable (mode {mode:04o}): anyone who can \
         write there can reset the rollback guard; run `chmod 700 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The module name cannot be a state file name.
    #[error(transparent)]
    InvalidModule(#[from] EnvelopeError),
}

/// Longest state file accepted: 20 digits and a newline, with room to spare.
const MAX_STATE_FILE_BYTES: u64 = 64;

/// Per-module high-water marks under a state folder. Safe to share between
/// threads (`Arc<SeqStore>`); each read-modify-write holds an internal lock.
#[derive(Debug)]
pub struct SeqStore {
    dir: PathBuf,
    /// Serialises `accept` (and reads, so they never see a rename midway)
    /// within this process. Held only for small file operations.
    lock: Mutex<()>,
}

impl SeqStore {
    /// Opens (creating, mode 0700) `<state_dir>/seq/` and removes temp files
    /// a crash left behind.
    pub fn open(state_dir: &Path) -> Result<SeqStore, SeqError> {
        let dir = state_dir.join("seq");
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| SeqError::Io { path, source }
        };
        if !dir.is_dir() {
            for d in [state_dir, dir.as_path()] {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d)
                    .map_err(io_err(d))?;
            }
            // Make the new folder's entry durable before any mark lands in it.
            File::open(state_dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(state_dir))?;
        }
        let mode = fs::metadata(&dir).map_err(io_err(&dir))?.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(SeqError::InsecurePermissions { path: dir, mode });
        }
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with('.') && n.contains(".tmp-"))
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(SeqStore {
            dir,
            lock: Mutex::new(()),
        })
    }

    /// The highest accepted seq for `module`, or `None` when none was
    /// accepted yet. Also `None` when the state file cannot be read; use
    /// [`SeqStore::try_highest`] (or `check`, which reports it) to see why.
    pub fn highest(&self, module: &str) -> Option<u64> {
        self.try_highest(module).ok().flatten()
    }

    /// Like [`SeqStore::highest`], but reports a corrupt or unreadable file.
    pub fn try_highest(&self, module: &str) -> Result<Option<u64>, SeqError> {
        let _guard = self.lock();
        self.read_mark(module)
    }

    /// Refuses `seq` unless it is above the highest accepted one, or
    /// `allow_rollback` is set. Does not record anything: call
    /// [`SeqStore::accept`] once the module has loaded.
    pub fn check(&self, module: &str, seq: u64, allow_rollback: bool) -> Result<(), SeqError> {
        let highest = self.try_highest(module)?;
        match highest {
            Some(highest) if seq <= highest && !allow_rollback => Err(SeqError::Rollback {
                module: module.to_owned(),
                seq,
                highest,
            }),
            _ => Ok(()),
        }
    }

    /// Records `seq` as the high-water mark for `module`, durably. A `seq`
    /// at or below the stored mark (an allowed rollback) leaves the mark
    /// where it is: marks never go down.
    pub fn accept(&self, module: &str, seq: u64) -> Result<(), SeqError> {
        let _guard = self.lock();
        if self
            .read_mark(module)?
            .is_some_and(|highest| seq <= highest)
        {
            return Ok(());
        }
        self.write_mark(module, seq)
    }

    /// The lock guards no data, only the order of file operations, so
    /// [`sync::lock`]'s recovery from poisoning is trivially right here.
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        sync::lock(&self.lock)
    }

    fn path_for(&self, module: &str) -> Result<PathBuf, SeqError> {
        validate_module_name(module)?;
        Ok(self.dir.join(module))
    }

    fn read_mark(&self, module: &str) -> Result<Option<u64>, SeqError> {
        let path = self.path_for(module)?;
        let text = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SeqError::Io { path, source }),
        };
        let corrupt = |reason: String| SeqError::Corrupt {
            path: path.clone(),
            reason,
        };
        if text.len() as u64 > MAX_STATE_FILE_BYTES {
            return Err(corrupt(format!("{} bytes long", text.len())));
        }
        let text = std::str::from_utf8(&text).map_err(|_| corrupt("not text".into()))?;
        let digits = text.strip_suffix('\n').unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(corrupt(format!("found {digits:?}, expected a number")));
        }
        digits
            .parse()
            .map(Some)
            .map_err(|_| corrupt(format!("{digits} is out of range")))
    }

    /// Durably, through [`write_atomically`]: after a crash the file holds
    /// the old mark or the new one.
    fn write_mark(&self, module: &str, seq: u64) -> Result<(), SeqError> {
        let path = self.path_for(module)?;
        write_atomically(&path, format!("{seq}\n").as_bytes(), 0o600)
            .map_err(|WriteError { path, source }| SeqError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn accept_highest_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = SeqStore::open(dir.path()).unwrap();
        assert_eq!(store.highest("notes"), None);
        store.check("notes", 0, false).unwrap();
        store.accept("notes", 42).unwrap();
        assert_eq!(store.highest("notes"), Some(42));
        assert_eq!(store.highest("echo"), None);
        store.check("notes", 43, false).unwrap();
        for seq in [42, 41, 0] {
            let err = store.check("notes", seq, false).unwrap_err();
            assert!(
                matches!(err, SeqError::Rollback { highest: 42, .. }),
                "{err}"
            );
        }
        let msg = store.check("notes", 41, false).unwrap_err().to_string();
        assert!(msg.contains("seq 41") && msg.contains("seq 42"), "{msg}");
        assert!(
            msg.contains("--seq") && msg.contains("allow_rollback = true"),
            "{msg}"
        );
        store.check("notes", 41, true).unwrap();
    }

    #[test]
    fn never_lowers_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store = SeqStore::open(dir.path()).unwrap();
        store.accept("notes", 10).unwrap();
        store.accept("notes", 3).unwrap(); // an allowed rollback
        store.accept("notes", 10).unwrap();
        assert_eq!(store.highest("notes"), Some(10));
        store.accept("notes", u64::MAX).unwrap();
        assert_eq!(store.highest("notes"), Some(u64::MAX));
    }

    #[test]
    fn persists_across_reopen_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        SeqStore::open(&state).unwrap().accept("notes", 7).unwrap();
        let store = SeqStore::open(&state).unwrap();
        assert_eq!(store.highest("notes"), Some(7));
        assert_eq!(fs::read_to_string(state.join("seq/notes")).unwrap(), "7\n");
        assert_eq!(fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            fs::metadata(state.join("seq")).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn crash_leftovers_are_ignored_and_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let store = SeqStore::open(dir.path()).unwrap();
        store.accept("notes", 5).unwrap();
        // What a kill -9 between "write temp" and "rename" leaves behind.
        let leftover = dir.path().join("seq/.notes.tmp-1-0");
        fs::write(&leftover, "9").unwrap();
        let store = SeqStore::open(dir.path()).unwrap();
        assert_eq!(store.highest("notes"), Some(5));
        assert!(!leftover.exists());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SeqStore::open(dir.path()).unwrap();
        for junk in ["", "12x\n", "-1\n", "99999999999999999999999\n"] {
            fs::write(dir.path().join("seq/notes"), junk).unwrap();
            let err = store.check("notes", 1, false).unwrap_err();
            assert!(matches!(err, SeqError::Corrupt { .. }), "{junk:?}: {err}");
            assert!(err.to_string().contains("seq/notes"), "{err}");
            assert!(matches!(
                store.accept("notes", 1),
                Err(SeqError::Corrupt { .. })
            ));
            assert_eq!(store.highest("notes"), None);
        }
        // Other modules are unaffected.
        store.accept("echo", 1).unwrap();
    }

    #[test]
    fn refuses_bad_module_names_and_open_folders() {
        let dir = tempfile::tempdir().unwrap();
        let store = SeqStore::open(dir.path()).unwrap();
        assert!(matches!(
            store.accept("../x", 1),
            Err(SeqError::InvalidModule(_))
        ));
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(dir.path().join("seq"), fs::Permissions::from_mode(0o777)).unwrap();
        let err = SeqStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, SeqError::InsecurePermissions { .. }), "{err}");
    }

    #[test]
    fn concurrent_accepts_keep_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SeqStore::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..25u64 {
                        // Interleaved, out-of-order values across threads.
                        store.accept("notes", i * 8 + t).unwrap();
                        store.accept("echo", 1000 - (i * 8 + t)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.highest("notes"), Some(24 * 8 + 7));
        assert_eq!(store.highest("echo"), Some(1000));
        assert_eq!(
            SeqStore::open(dir.path()).unwrap().highest("notes"),
            Some(199)
        );
        let leftovers = fs::read_dir(dir.path().join("seq")).unwrap().count();
        assert_eq!(leftovers, 2);
    }
}
