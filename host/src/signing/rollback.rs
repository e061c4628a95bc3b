//! The rollback guard: the highest `seq` accepted per module, persisted.
//!
//! Without it, anyone who can drop files into `plugins/` could bring back an
//! old, correctly signed build with a known bug. The host refuses a `seq` at
//! or below the high-water mark unless the operator sets
//! `allow_rollback = true`.
//!
//! A mark is the seq *and* the SHA-512 of the build accepted at it: after a
//! restart the same build loads again (the same files must come back up),
//! but a different build signed with the same seq is refused like an older
//! one, because otherwise a leaked key plus one guessable number would let
//! any build in after a restart.
//!
//! On disk: `<state_dir>/seq/<module>` holds the mark as decimal digits, a
//! space, the build's SHA-512 in hex, and a newline (`7 ab12…\n`); a file
//! of digits alone (written before the hash was kept) is read as a mark
//! without a build, whose equal seq is accepted once and then recorded with
//! its hash. One small file per module, so modules never contend for one
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
    /// Another build was accepted at this very seq.
    #[error(
        "module {module:?}: a different build was already accepted at seq {seq} (rollback \
         guard): sign this build with a higher `--seq`, or set `allow_rollback = true` under \
         [modules] to load it on purpose"
    )]
    SameSeqOtherBuild {
        /// The module.
        module: String,
        /// The seq both builds carry.
        seq: u64,
    },
    /// A state file holds something other than a mark.
    #[error(
        "rollback state file {} is corrupt ({reason}): it should hold the highest accepted seq \
         for the module (digits, optionally a space and the build's SHA-512 in hex); write that \
         number into it, or delete it to accept any seq once",
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

/// Longest state file accepted: 20 digits, a space, 128 hex digits and a
/// newline, with room to spare.
const MAX_STATE_FILE_BYTES: u64 = 256;

/// A module's high-water mark: the highest accepted seq and, when known,
/// the SHA-512 of the build accepted at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    seq: u64,
    /// `None` in files written before builds were recorded.
    sha512: Option<[u8; 64]>,
}

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
        Ok(self.read_mark(module)?.map(|mark| mark.seq))
    }

    /// Refuses the build `sha512` signed with `seq` unless `seq` is above
    /// the highest accepted one, or it is the very build accepted at that
    /// seq (a restart, or a reload of the build that served), or
    /// `allow_rollback` is set. Does not record anything: call
    /// [`SeqStore::accept`] once the module has loaded.
    pub fn check(
        &self,
        module: &str,
        seq: u64,
        sha512: &[u8; 64],
        allow_rollback: bool,
    ) -> Result<(), SeqError> {
        let mark = {
            let _guard = self.lock();
            self.read_mark(module)?
        };
        match mark {
            _ if allow_rollback => Ok(()),
            None => Ok(()),
            Some(mark) if seq > mark.seq => Ok(()),
            Some(mark) if seq < mark.seq => Err(SeqError::Rollback {
                module: module.to_owned(),
                seq,
                highest: mark.seq,
            }),
            Some(Mark { sha512: None, .. }) => Ok(()),
            Some(Mark {
                sha512: Some(accepted),
                ..
            }) if accepted == *sha512 => Ok(()),
            Some(_) => Err(SeqError::SameSeqOtherBuild {
                module: module.to_owned(),
                seq,
            }),
        }
    }

    /// Records `seq` and the build `sha512` as the high-water mark for
    /// `module`, durably. A `seq` below the stored mark (an allowed
    /// rollback) leaves the mark where it is, and so does an equal one
    /// whose build is already recorded: marks never go down, and the build
    /// recorded at a seq is the first accepted at it.
    pub fn accept(&self, module: &str, seq: u64, sha512: &[u8; 64]) -> Result<(), SeqError> {
        let _guard = self.lock();
        match self.read_mark(module)? {
            Some(mark) if seq < mark.seq => return Ok(()),
            Some(Mark {
                seq: highest,
                sha512: Some(_),
            }) if seq == highest => return Ok(()),
            _ => {}
        }
        self.write_mark(module, seq, sha512)
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

    fn read_mark(&self, module: &str) -> Result<Option<Mark>, SeqError> {
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
        let line = text.strip_suffix('\n').unwrap_or(text);
        let (digits, build) = match line.split_once(' ') {
            Some((digits, build)) => (digits, Some(build)),
            None => (line, None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(corrupt(format!("found {digits:?}, expected a number")));
        }
        let seq = digits
            .parse()
            .map_err(|_| corrupt(format!("{digits} is out of range")))?;
        let sha512 = match build {
            None => None,
            Some(build) => {
                let mut sha512 = [0u8; 64];
                hex::decode_to_slice(build, &mut sha512).map_err(|_| {
                    corrupt(format!(
                        "after the seq, {build:?} is not a SHA-512 in hex (128 hex digits)"
                    ))
                })?;
                Some(sha512)
            }
        };
        Ok(Some(Mark { seq, sha512 }))
    }

    /// Durably, through [`write_atomically`]: after a crash the file holds
    /// the old mark or the new one.
    fn write_mark(&self, module: &str, seq: u64, sha512: &[u8; 64]) -> Result<(), SeqError> {
        let path = self.path_for(module)?;
        let line = format!("{seq} {}\n", hex::encode(sha512));
        write_atomically(&path, line.as_bytes(), 0o600)
            .map_err(|WriteError { path, source }| SeqError::Io { path, source })
    }
}

#[cfg(test)]
mod tests;
