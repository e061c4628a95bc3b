//! Signing a library's bytes and verifying them against the keyring.
//!
//! [`verify`] runs its checks in a fixed order, cheapest and most telling
//! first, and each failure has its own [`SignatureError`] variant so the
//! loader and `modhost verify` can say exactly what went wrong:
//!
//! 1. the envelope is well-formed (fields are public, so it is re-checked);
//! 2. the file length equals the signed `size` (truncated or grown file);
//! 3. the SHA-512 equals the signed hash (file changed after signing);
//! 4. the signed module has at least one verify key;
//! 5. one of those keys verifies the signature (`verify_strict`).
//!
//! Steps 2 and 3 alone prove nothing (anyone can edit the envelope); they
//! exist to turn the common accidents (a half-copied file, a rebuild
//! without re-signing) into messages that say so.

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey};
use sha2::{Digest as _, Sha512};

use super::envelope::{Envelope, EnvelopeError, FORMAT, MAX_ENVELOPE_BYTES};
use super::keys::{Keyring, key_id};
use crate::util::fs::open_regular;

/// Libraries larger than this are refused before they are read (a release
/// module is about 0.7 MB, a debug one about 9 MB).
pub const MAX_MODULE_BYTES: u64 = 512 * 1024 * 1024;

/// What a good signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed module name; the loaded manifest must report the same.
    pub module: String,
    /// The signed version; the loaded manifest must report the same.
    pub version: String,
    /// The signed sequence number, for the rollback guard.
    pub seq: u64,
    /// The signed ABI id.
    pub abi: String,
    /// [`key_id`] of the key that verified, recomputed (the envelope's
    /// `key_id` is never trusted).
    pub key_id: String,
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "module {} version {} seq {} abi {} signed by key {}",
            self.module, self.version, self.seq, self.abi, self.key_id
        )
    }
}

/// Why a library was not accepted as signed. One variant per cause; each
/// message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `<lib>.sig` next to the library.
    #[error(
        "no signature: expected {} next to {}; sign it with `modhost sign`",
        sig.display(),
        lib.display()
    )]
    MissingSignature {
        /// The library.
        lib: PathBuf,
        /// The `.sig` path that does not exist.
        sig: PathBuf,
    },
    /// The library or its `.sig` could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The library is over [`MAX_MODULE_BYTES`].
    #[error(
        "{} is over the {limit}-byte limit for a module library; is this really a module?",
        path.display()
    )]
    TooLarge {
        /// The library.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The `.sig` is not a valid envelope.
    #[error("bad signature envelope{}: {source}", match sig { Some(p) => format!(" {}", p.display()), None => String::new() })]
    InvalidEnvelope {
        /// The `.sig` file, when the envelope came from one.
        sig: Option<PathBuf>,
        /// What is wrong with it.
        source: EnvelopeError,
    },
    /// The file length differs from the signed `size`.
    #[error(
        "module {module:?}: file is {actual} bytes but was signed at {signed} bytes: the .sig \
         is for another build, or the file was truncated or grown after signing; sign this \
         build (`modhost package` or `modhost sign`), or put its own .sig beside it"
    )]
    SizeMismatch {
        /// The signed module name.
        module: String,
        /// The signed size.
        signed: u64,
        /// The file's size.
        actual: u64,
    },
    /// The SHA-512 differs from the signed hash.
    #[error(
        "module {module:?}: SHA-512 of the file does not match the signed hash: the .sig is \
         for another build, or the file changed after signing; sign this build (`modhost \
         package` or `modhost sign`), or put its own .sig beside it"
    )]
    DigestMismatch {
        /// The signed module name.
        module: String,
    },
    /// The signed module has no verify key.
    #[error("no verify key for module {module:?}: add its public key to verify_keys/{module}.pub")]
    NoKey {
        /// The signed module name.
        module: String,
    },
    /// No key of the module verifies the signature.
    #[error(
        "module {module:?}: signature does not verify with any of its {keys} key(s) in \
         verify_keys/{module}.pub: it was signed with another key or the envelope was edited; \
         sign it with the module's key, or add that key's public half to verify_keys/{module}.pub"
    )]
    BadSignature {
        /// The signed module name.
        module: String,
        /// How many keys were tried.
        keys: usize,
    },
}

/// Signs `bytes` as `module`/`version`/`seq` built for `abi`.
///
/// The caller checks the field rules first ([`Envelope::validate`] on the
/// result): `sign` itself never fails, so it will sign values that
/// `Envelope::parse` refuses, such as a `seq` above `i64::MAX`.
pub fn sign(
    bytes: &[u8],
    key: &SigningKey,
    module: &str,
    version: &str,
    seq: u64,
    abi: &str,
) -> Envelope {
    let mut envelope = Envelope {
        format: FORMAT,
        module: module.to_owned(),
        version: version.to_owned(),
        seq,
        abi: abi.to_owned(),
        size: bytes.len() as u64,
        sha512: Sha512::digest(bytes).into(),
        key_id: key_id(&key.verifying_key()),
        signature: [0; 64],
    };
    envelope.signature = key.sign(&envelope.signed_message()).to_bytes();
    envelope
}

/// Checks that `envelope` is a good signature over exactly `bytes` by a key
/// of the signed module (see the module docs for the order of checks).
///
/// The key is chosen by the **signed** module name: a key listed in `a.pub`
/// can never validate module `b`, whatever the library's file is called.
pub fn verify(
    bytes: &[u8],
    envelope: &Envelope,
    keyring: &Keyring,
) -> Result<Verified, SignatureError> {
    envelope
        .validate()
        .map_err(|source| SignatureError::InvalidEnvelope { sig: None, source })?;
    let module = &envelope.module;
    let actual = bytes.len() as u64;
    if actual != envelope.size {
        return Err(SignatureError::SizeMismatch {
            module: module.clone(),
            signed: envelope.size,
            actual,
        });
    }
    let digest: [u8; 64] = Sha512::digest(bytes).into();
    if digest != envelope.sha512 {
        return Err(SignatureError::DigestMismatch {
            module: module.clone(),
        });
    }
    let keys = keyring.keys_for(module);
    if keys.is_empty() {
        return Err(SignatureError::NoKey {
            module: module.clone(),
        });
    }
    let message = envelope.signed_message();
    let signature = Signature::from_bytes(&envelope.signature);
    let good = keys
        .iter()
        .find(|key| key.verify_strict(&message, &signature).is_ok())
        .ok_or_else(|| SignatureError::BadSignature {
            module: module.clone(),
            keys: keys.len(),
        })?;
    Ok(Verified {
        module: module.clone(),
        version: envelope.version.clone(),
        seq: envelope.seq,
        abi: envelope.abi.clone(),
        key_id: key_id(good),
    })
}

/// Reads `path` and `<path>.sig` once each and verifies them.
///
/// Returns the envelope and the verified bytes: load **these** bytes (from
/// a sealed copy), never the path again, or the file could be swapped
/// between the check and the load.
pub fn verify_file(path: &Path, keyring: &Keyring) -> Result<(Envelope, Vec<u8>), SignatureError> {
    let (envelope, bytes) = read_signed(path)?;
    verify(&bytes, &envelope, keyring)?;
    Ok((envelope, bytes))
}

/// `<path>.sig`: the name is appended, not substituted (`notes.so.sig`).
pub fn sig_path(path: &Path) -> PathBuf {
    let mut sig = path.as_os_str().to_owned();
    sig.push(".sig");
    PathBuf::from(sig)
}

/// Reads and parses `<path>.sig`, then reads `path` (bounded), without
/// checking anything else.
pub(crate) fn read_signed(path: &Path) -> Result<(Envelope, Vec<u8>), SignatureError> {
    let sig = sig_path(path);
    let sig_file = match open_regular(&sig) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SignatureError::MissingSignature {
                lib: path.to_owned(),
                sig,
            });
        }
        Err(source) => return Err(SignatureError::Read { path: sig, source }),
    };
    let mut raw = Vec::new();
    sig_file
        .take(MAX_ENVELOPE_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|source| SignatureError::Read {
            path: sig.clone(),
            source,
        })?;
    let text = String::from_utf8(raw).map_err(|_| SignatureError::InvalidEnvelope {
        sig: Some(sig.clone()),
        source: EnvelopeError::Syntax {
            message: "not UTF-8 text".into(),
        },
    })?;
    let envelope = Envelope::parse(&text).map_err(|source| SignatureError::InvalidEnvelope {
        sig: Some(sig.clone()),
        source,
    })?;
    let bytes = read_library(path)?;
    Ok((envelope, bytes))
}

/// Reads a library in one pass, refusing anything over
/// [`MAX_MODULE_BYTES`] (also if it grows while being read).
pub(crate) fn read_library(path: &Path) -> Result<Vec<u8>, SignatureError> {
    let read_err = |source| SignatureError::Read {
        path: path.to_owned(),
        source,
    };
    let file = open_regular(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_MODULE_BYTES {
        return Err(SignatureError::TooLarge {
            path: path.to_owned(),
            limit: MAX_MODULE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_MODULE_BYTES {
        return Err(SignatureError::TooLarge {
            path: path.to_owned(),
            limit: MAX_MODULE_BYTES,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
