//! The host's own signing key for frames to external modules.
//!
//! Kept in `[modules] state_dir` as `external-host.key` (mode 0600, the
//! format of `modhost keygen`'s `<module>.key`), made the first time it is
//! needed, so a host that never serves external modules never has one. Its
//! public half is served at `GET <[external] path>/key` as one base64 line,
//! the format of a `.pub` line and of PyNaCl's `VerifyKey.encode(Base64Encoder)`.
//! It lives in the state folder, never in the repository.
//!
//! The accounts' access tokens are signed by a key kept the same way, in a
//! file of its own ([`load_or_create_named`]): one purpose per key, so a
//! signature made for one is never valid for the other.

use std::{
    fs::{self, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ed25519_dalek::SigningKey;

use crate::signing::{KeyError, read_signing_key};

/// The key file's name in `state_dir`.
pub(super) const FILE: &str = "external-host.key";

/// Why the host key could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// Writing a new key failed.
    #[error(
        "cannot create the host key at {}: {source}; check that [modules] state_dir is writable by the host",
        path.display()
    )]
    Create {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The OS has no randomness to give.
    #[error("cannot get randomness from the OS to make the host key: {0}")]
    Random(getrandom::Error),
    /// An existing key file is unreadable or open to others.
    #[error("the host key: {0}")]
    Read(#[from] KeyError),
}

/// Reads `state_dir/external-host.key`, making it first if it is missing.
pub(super) fn load_or_create(state_dir: &Path) -> Result<SigningKey, HostKeyError> {
    load_or_create_named(state_dir, FILE, "signs frames to external modules")
}

/// Reads `state_dir/<file>`, making it first if it is missing; `purpose`
/// goes into the new file's comment line.
pub(crate) fn load_or_create_named(
    state_dir: &Path,
    file: &str,
    purpose: &str,
) -> Result<SigningKey, HostKeyError> {
    let path = state_dir.join(file);
    let create = |source| HostKeyError::Create {
        path: path.clone(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(create)?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(HostKeyError::Random)?;
    // `create_new`: two hosts sharing a state folder, or a key made
    // between the check and the write, never overwrite a key modules trust.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            let text = format!(
                "# modhost host key: {purpose}; never share it\n{}\n",
                BASE64.encode(seed)
            );
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(create)?;
            tracing::info!(path = %path.display(), "made a host key that {purpose}");
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(create(e)),
    }
    Ok(read_signing_key(&path)?)
}

/// The public key as served at `<path>/key`.
pub(super) fn public_b64(key: &SigningKey) -> String {
    BASE64.encode(key.verifying_key().as_bytes())
}
