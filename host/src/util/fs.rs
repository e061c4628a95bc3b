//! Opening files the host reads (modules, signatures, keys, config) so that
//! a FIFO or device in their place cannot block it, and replacing a file so
//! that a reader, or the file system after a crash, sees either the old
//! content or the new, never a mix.
//!
//! Used for the rollback guard's marks (`signing/rollback.rs`), where a torn
//! file would let an old build back in or lock a module out, and for `.sig`
//! files written by `modhost sign` into a folder a running host watches,
//! where half an envelope would be refused out loud.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

/// Opens `path` for reading and refuses anything but a regular file.
///
/// `O_NONBLOCK` is what makes this safe: opening a FIFO for reading
/// otherwise blocks until someone opens it for writing, so a FIFO named
/// `x.so.sig` in `plugins/` would freeze the module watcher (and, after a
/// restart, start-up) for good. With it the open returns at once, the
/// opened file's type is checked (the file, not the path, so a swap in
/// between changes nothing), and reads of a regular file are unaffected by
/// the flag. The error is `InvalidInput` and names the file's type.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file ({what}); it is skipped: replace it with a regular file"),
    ))
}

/// Why [`write_atomically`] failed: the OS error, and the file or folder of
/// the step that failed (the temp file, the target for the rename, or the
/// folder for its fsync), so the message points at what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub(crate) struct WriteError {
    /// The file or folder the failing step worked on.
    pub(crate) path: PathBuf,
    /// The OS error.
    pub(crate) source: io::Error,
}

/// Writes `bytes` to `path` atomically and durably: a temp file in the same
/// folder (created with `mode`, never over an existing file), write, fsync,
/// rename over `path`, fsync the folder.
///
/// Why each step:
/// - same folder: `rename` is atomic only within one file system;
/// - fsync before the rename: otherwise a crash can leave the *new* name
///   pointing at a file whose data never reached the disk (empty or torn);
/// - fsync the folder: the rename itself is only durable once the folder
///   entry is on disk.
///
/// The temp file is named `.<file name>.tmp-<pid>-<n>`: hidden, so the
/// module watcher ignores it, and unique within and across processes. On
/// failure it is removed; after a `kill -9` it may be left behind, and the
/// owner of the folder cleans such files up (the rollback guard does on
/// open).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    /// Makes temp file names unique within the process.
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteError { path, source }
    };
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(failed(&tmp)(e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(failed(path)(e));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed(dir))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[test]
    fn open_regular_refuses_fifos_and_folders_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.so.sig");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo touches nothing else.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // A plain open would block here for good: nobody writes to it.
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let err = open_regular(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
        let file = dir.path().join("ok");
        fs::write(&file, b"content").unwrap();
        let mut text = String::new();
        io::Read::read_to_string(&mut open_regular(&file).unwrap(), &mut text).unwrap();
        assert_eq!(text, "content");
    }

    #[test]
    fn replaces_content_with_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mark");
        write_atomically(&path, b"1\n", 0o600).unwrap();
        write_atomically(&path, b"22\n", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"22\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["mark"]);
    }

    #[test]
    fn a_failed_rename_names_the_target_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty folder cannot be replaced by a file.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), "x").unwrap();
        let err = write_atomically(&path, b"x", 0o644).unwrap_err();
        assert_eq!(err.path, path);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
