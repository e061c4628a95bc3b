//! Who can change a verify key: the owners and permissions of a key folder,
//! of every folder above it, and of where its symlinks lead.
//!
//! A key folder that only its owner can write to is still open if the
//! folder above it is not: whoever can write there can rename the key
//! folder away and put their own in its place. So can the owner of any of
//! those folders, and so can whoever controls the folder a symlink points
//! into. [`check_chain`] therefore walks the path as given *and* the path
//! with symlinks resolved, up to `/`, and refuses a folder that:
//! - belongs to someone other than root or the user modhost runs as, or
//! - is group- or world-writable without the sticky bit (`/tmp` is fine:
//!   there nobody may rename what they do not own).
//!
//! The key folder and `.pub` files themselves are held to more: no group
//! or world write bit at all (`keys.rs`), and the same owners.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Why a key folder or file is not trusted. Each message names the path
/// and says what to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A path on the way could not be examined.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A folder above the keys (or above where a symlink leads) that others
    /// can write to without the sticky bit.
    #[error(
        "{} is group- or world-writable (mode {mode:04o}): anyone who can write there can \
         replace the verify keys below it and sign modules for this host; run `chmod go-w {}`",
        path.display(),
        path.display()
    )]
    Writable {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key folder, a folder above it, or a `.pub` file belongs to a user
    /// other than root and the one modhost runs as.
    #[error(
        "{} belongs to uid {uid}, neither root nor the user modhost runs as (uid {own}): that \
         user can sign modules for this host; run `chown {own} {}` or move the keys",
        path.display(),
        path.display()
    )]
    Owner {
        /// The file or folder.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// The user modhost runs as.
        own: u32,
    },
}

/// The sticky bit: in such a folder only an entry's owner may rename it.
const STICKY: u32 = 0o1000;

/// Refuses `path` (a verify-keys folder or `.pub` file) when anyone but
/// root and this process's user could replace it; see the module docs.
pub(crate) fn check_chain(path: &Path) -> Result<(), TrustError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TrustError::Io { path, source }
    };
    let given = std::path::absolute(path).map_err(io_err(path))?;
    let resolved = fs::canonicalize(path).map_err(io_err(path))?;
    check_owner(&resolved)?;
    let mut seen: Vec<PathBuf> = Vec::new();
    for start in [&given, &resolved] {
        for folder in start.ancestors().skip(1) {
            if seen.iter().any(|s| s == folder) {
                continue;
            }
            check_owner(folder)?;
            let mode = fs::metadata(folder).map_err(io_err(folder))?.mode() & 0o7777;
            if mode & 0o022 != 0 && mode & STICKY == 0 {
                return Err(TrustError::Writable {
                    path: folder.to_owned(),
                    mode,
                });
            }
            seen.push(folder.to_owned());
        }
    }
    Ok(())
}

/// Refuses `path` unless root or this process's user owns it.
fn check_owner(path: &Path) -> Result<(), TrustError> {
    let uid = fs::metadata(path)
        .map_err(|source| TrustError::Io {
            path: path.to_owned(),
            source,
        })?
        .uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own = unsafe { libc::geteuid() };
    if uid == 0 || uid == own {
        return Ok(());
    }
    Err(TrustError::Owner {
        path: path.to_owned(),
        uid,
        own,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_folder_under_private_or_sticky_parents_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        fs::create_dir(&keys).unwrap();
        check_chain(&keys).unwrap();
        // Sticky and world-writable, as /tmp is.
        chmod(dir.path(), 0o1777);
        check_chain(&keys).unwrap();
    }

    #[test]
    fn a_writable_parent_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("shared");
        let keys = parent.join("keys");
        fs::create_dir_all(&keys).unwrap();
        chmod(&parent, 0o777);
        let err = check_chain(&keys).unwrap_err();
        assert!(
            matches!(&err, TrustError::Writable { path, mode: 0o777 } if *path == parent),
            "{err}"
        );
        chmod(&parent, 0o775);
        assert!(check_chain(&keys).is_err(), "group-writable parent");
        chmod(&parent, 0o755);
        check_chain(&keys).unwrap();
    }

    #[test]
    fn a_symlink_into_a_writable_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        let target = open.join("keys");
        fs::create_dir_all(&target).unwrap();
        chmod(&open, 0o777);
        let link = dir.path().join("verify_keys");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = check_chain(&link).unwrap_err();
        assert!(
            matches!(&err, TrustError::Writable { path, .. } if *path == open),
            "{err}"
        );
    }

    #[test]
    fn a_folder_owned_by_another_user_is_refused() {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // Only root can hand a folder to another user; CI runs as root.
            eprintln!("skipped: needs root to chown");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        fs::create_dir(&keys).unwrap();
        std::os::unix::fs::chown(&keys, Some(4242), None).unwrap();
        let err = check_chain(&keys).unwrap_err();
        assert!(matches!(&err, TrustError::Owner { uid: 4242, .. }), "{err}");
        assert!(err.to_string().contains("chown"), "{err}");
        // And a folder above it.
        std::os::unix::fs::chown(&keys, Some(0), None).unwrap();
        std::os::unix::fs::chown(dir.path(), Some(4242), None).unwrap();
        assert!(matches!(
            check_chain(&keys),
            Err(TrustError::Owner { uid: 4242, .. })
        ));
    }
}
