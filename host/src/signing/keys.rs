//! Verify keys (`verify_keys/<module>.pub`) and signing keys
//! (`<module>.key`).
//!
//! A `.pub` file holds one base64-encoded 32-byte ed25519 public key per
//! line; `#` starts a comment, blank lines are ignored, and several keys may
//! be listed while a module's key is rotated. The file name is the module
//! name, and that is the only module its keys can verify (DESIGN §3): the
//! signed `module` field picks the file, never the library's file name.
//!
//! Whoever can write to a verify-keys folder can sign modules for this host,
//! so [`Keyring::load`] refuses folders and files that are group- or
//! world-writable or owned by another user, or that sit under a folder
//! others could change (`trust.rs`), and [`read_signing_key`] refuses a private key others can
//! read.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::envelope::{EnvelopeError, validate_module_name};
use super::trust::{TrustError, check_chain};
use crate::util::fs::open_regular;

/// `.pub` files larger than this are refused (a key line is 44 bytes).
pub(crate) const MAX_PUB_FILE_BYTES: u64 = 64 * 1024;
/// Signing key files larger than this are refused.
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 4 * 1024;

/// Why keys could not be loaded, generated or read. Each message names the
/// file and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A verify-keys path exists but is not a folder.
    #[error("verify keys path {} is not a folder", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A folder or `.pub` file that others could write to.
    #[error(
        "{} is group- or world-writable (mode {mode:04o}): anyone who can write there can \
         sign modules for this host; run `chmod go-w {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The folder or file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key folder or `.pub` file could be replaced by someone other
    /// than root and modhost's user (`trust.rs`).
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    /// A line of a `.pub` or `.key` file is not a valid key.
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, and what the line should look like.
        reason: String,
    },
    /// A key file is over its size bound.
    #[error("{} is {len} bytes, over the {limit}-byte limit for a key file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A signing key file holds no key.
    #[error("{} holds no key: expected one base64 line (see `modhost keygen`)", path.display())]
    EmptyKeyFile {
        /// The file.
        path: PathBuf,
    },
    /// `keygen` would overwrite an existing signing key.
    #[error(
        "{} already exists: refusing to overwrite a signing key; move it away or choose \
         another output folder",
        path.display()
    )]
    KeyFileExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A signing key others can read or write.
    #[error(
        "signing key {} is accessible by group or others (mode {mode:04o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A module name that cannot be a key file name.
    #[error(transparent)]
    InvalidModule(#[from] EnvelopeError),
    /// The OS gave no randomness for a new key.
    #[error("cannot get randomness from the OS to generate a key: {0}")]
    Random(getrandom::Error),
}

/// The verify keys of every module, loaded from one or more folders of
/// `<module>.pub` files.
#[derive(Debug, Default, Clone)]
pub struct Keyring {
    keys: BTreeMap<String, Vec<VerifyingKey>>,
    warnings: Vec<String>,
}

impl Keyring {
    /// Loads every `<module>.pub` in `dirs`; a module's keys from several
    /// folders are merged.
    ///
    /// A missing folder is not an error (it is reported in
    /// [`Keyring::warnings`]); a group- or world-writable folder or file, or
    /// a malformed line, is. Files whose name is not `<module>.pub` with a
    /// valid module name are skipped with a warning.
    pub fn load(dirs: &[PathBuf]) -> Result<Keyring, KeyError> {
        let mut ring = Keyring::default();
        for dir in dirs {
            ring.load_dir(dir)?;
        }
        Ok(ring)
    }

    fn load_dir(&mut self, dir: &Path) -> Result<(), KeyError> {
        let meta = match fs::metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.warnings.push(format!(
                    "verify keys folder {} does not exist: no module can be verified with keys from it",
                    dir.display()
                ));
                return Ok(());
            }
            Err(source) => {
                return Err(KeyError::Io {
                    path: dir.to_owned(),
                    source,
                });
            }
        };
        if !meta.is_dir() {
            return Err(KeyError::NotADirectory {
                path: dir.to_owned(),
            });
        }
        refuse_writable_by_others(dir, &meta)?;
        check_chain(dir)?;

        let io_err = |source| KeyError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err)? {
            let path = entry.map_err(io_err)?.path();
            if path.extension().is_some_and(|ext| ext == "pub") {
                files.push(path);
            }
        }
        // Sorted, so warnings and key order do not depend on the file system.
        files.sort();

        for path in files {
            let Some(module) = path.file_stem().and_then(|s| s.to_str()) else {
                self.warnings.push(format!(
                    "skipping {}: not a <module>.pub name",
                    path.display()
                ));
                continue;
            };
            if validate_module_name(module).is_err() {
                self.warnings.push(format!(
                    "skipping {}: {module:?} is not a module name ([a-z0-9_-], 1 to 64 characters)",
                    path.display()
                ));
                continue;
            }
            let meta = fs::metadata(&path).map_err(|source| KeyError::Io {
                path: path.clone(),
                source,
            })?;
            if !meta.is_file() {
                self.warnings
                    .push(format!("skipping {}: not a regular file", path.display()));
                continue;
            }
            refuse_writable_by_others(&path, &meta)?;
            check_chain(&path)?;
            let text = read_bounded(&path, MAX_PUB_FILE_BYTES)?;
            let keys = parse_pub_file(&path, &text)?;
            if keys.is_empty() {
                self.warnings.push(format!(
                    "{} holds no key: module {module:?} cannot be verified",
                    path.display()
                ));
            }
            let entry = self.keys.entry(module.to_owned()).or_default();
            for key in keys {
                if !entry.contains(&key) {
                    entry.push(key);
                }
            }
        }
        Ok(())
    }

    /// The keys that may verify `module` (empty when it has none). Several
    /// keys mean the module's key is being rotated; any one of them will do.
    pub fn keys_for(&self, module: &str) -> &[VerifyingKey] {
        self.keys.get(module).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Adds a key for `module`, as if it were a line in `<module>.pub`.
    /// For hosts and tests that hold keys in memory.
    pub fn insert(&mut self, module: &str, key: VerifyingKey) -> Result<(), KeyError> {
        validate_module_name(module)?;
        let entry = self.keys.entry(module.to_owned()).or_default();
        if !entry.contains(&key) {
            entry.push(key);
        }
        Ok(())
    }

    /// Modules that have at least one key, in name order.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter(|(_, k)| !k.is_empty())
            .map(|(m, _)| m.as_str())
    }

    /// Things worth logging that did not stop loading: missing folders,
    /// skipped files, `.pub` files without keys.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// `hex(SHA-256(public key bytes))[..16]`: a short, stable name for a key in
/// envelopes, logs and the admin API.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

/// What [`generate_key`] wrote.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The module the key signs for.
    pub module: String,
    /// `out_dir/<module>.key`, mode 0600: keep it secret.
    pub key_file: PathBuf,
    /// `verify_keys_dir/<module>.pub`, which now lists the public key.
    pub pub_file: PathBuf,
    /// [`key_id`] of the new key.
    pub key_id: String,
    /// The new public key.
    pub verifying_key: VerifyingKey,
}

/// Generates a signing key for `module`: writes `out_dir/<module>.key`
/// (mode 0600, never overwriting an existing file) and appends the public
/// key, after a `# added <date> key_id <id>` comment, to
/// `verify_keys_dir/<module>.pub`. Missing folders are created (the key
/// folder 0700, the verify keys folder 0755).
///
/// Appending rather than replacing is what makes rotation work: builds
/// signed with the old key keep loading until its line is removed.
pub fn generate_key(
    module: &str,
    out_dir: &Path,
    verify_keys_dir: &Path,
) -> Result<GeneratedKey, KeyError> {
    validate_module_name(module)?;
    let key_file = out_dir.join(format!("{module}.key"));
    let pub_file = verify_keys_dir.join(format!("{module}.pub"));

    // Check everything that can be checked before the key file exists, so
    // a refusal leaves nothing behind.
    create_dir(verify_keys_dir, 0o755)?;
    let meta = fs::metadata(verify_keys_dir).map_err(|source| KeyError::Io {
        path: verify_keys_dir.to_owned(),
        source,
    })?;
    refuse_writable_by_others(verify_keys_dir, &meta)?;
    let existing_pub = match fs::metadata(&pub_file) {
        Ok(meta) => {
            refuse_writable_by_others(&pub_file, &meta)?;
            Some(read_bounded(&pub_file, MAX_PUB_FILE_BYTES)?)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(KeyError::Io {
                path: pub_file,
                source,
            });
        }
    };
    create_dir(out_dir, 0o700)?;
    if key_file.exists() {
        return Err(KeyError::KeyFileExists { path: key_file });
    }

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(KeyError::Random)?;
    let signing_key = SigningKey::from_bytes(&seed);
    let verifying_key = signing_key.verifying_key();
    let id = key_id(&verifying_key);

    write_new_file(
        &key_file,
        0o600,
        format!(
            "# modhost signing key for module {module}\n{}\n",
            BASE64.encode(seed)
        )
        .as_bytes(),
    )?;

    let mut line = String::new();
    if existing_pub
        .as_deref()
        .is_some_and(|t| !t.is_empty() && !t.ends_with('\n'))
    {
        line.push('\n');
    }
    line.push_str(&format!(
        "# added {} key_id {id}\n{}\n",
        utc_date(SystemTime::now()),
        BASE64.encode(verifying_key.as_bytes())
    ));
    if let Err(e) = append(&pub_file, line.as_bytes()) {
        // Nothing can have been signed with the key yet, and a key no
        // verifier knows is only confusing: take it back.
        let _ = fs::remove_file(&key_file);
        return Err(e);
    }

    Ok(GeneratedKey {
        module: module.to_owned(),
        key_file,
        pub_file,
        key_id: id,
        verifying_key,
    })
}

/// Reads a signing key written by [`generate_key`]: `#` comment lines and
/// one base64 line holding the 32-byte seed. Refuses a file that group or
/// others can access.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = open_regular(path).map_err(io_err)?;
    // Check the opened file, not the path, so a swap in between cannot
    // slip a different file past the check.
    let mode = file.metadata().map_err(io_err)?.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecureKeyFile {
            path: path.to_owned(),
            mode,
        });
    }
    let text = read_bounded_from(path, file, MAX_KEY_FILE_BYTES)?;
    let mut found: Option<(usize, [u8; 32])> = None;
    for (n, line) in content_lines(&text) {
        let malformed = |reason: String| KeyError::Malformed {
            path: path.to_owned(),
            line: n,
            reason,
        };
        if let Some((first, _)) = found {
            return Err(malformed(format!(
                "a signing key file holds exactly one key, but line {first} already has one"
            )));
        }
        found = Some((
            n,
            decode_32(line).map_err(|reason| {
                malformed(format!(
                    "{reason}; expected the base64 seed written by `modhost keygen`"
                ))
            })?,
        ));
    }
    match found {
        Some((_, seed)) => Ok(SigningKey::from_bytes(&seed)),
        None => Err(KeyError::EmptyKeyFile {
            path: path.to_owned(),
        }),
    }
}

/// Parses a `.pub` file's text; errors name the file and the line.
fn parse_pub_file(path: &Path, text: &str) -> Result<Vec<VerifyingKey>, KeyError> {
    let mut keys = Vec::new();
    for (n, line) in content_lines(text) {
        let malformed = |reason: String| KeyError::Malformed {
            path: path.to_owned(),
            line: n,
            reason: format!(
                "{reason}; each line must be one base64-encoded 32-byte ed25519 public key or a # comment"
            ),
        };
        let bytes = decode_32(line).map_err(malformed)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| malformed("not a valid ed25519 public key (not a curve point)".into()))?;
        if key.is_weak() {
            return Err(malformed(
                "a weak (small-order) key, which would accept forged signatures".into(),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// `(1-based line number, trimmed content)` for every line that holds more
/// than a comment. Base64 never contains `#`, so a `#` anywhere starts a
/// comment.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let content = line.split('#').next().unwrap_or("").trim();
        (!content.is_empty()).then_some((i + 1, content))
    })
}

fn decode_32(line: &str) -> Result<[u8; 32], String> {
    let bytes = BASE64
        .decode(line)
        .map_err(|e| format!("not base64 ({e})"))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("decodes to {len} bytes, not 32"))
}

fn refuse_writable_by_others(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

fn create_dir(dir: &Path, mode: u32) -> Result<(), KeyError> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|source| KeyError::Io {
            path: dir.to_owned(),
            source,
        })
}

fn read_bounded(path: &Path, limit: u64) -> Result<String, KeyError> {
    let file = open_regular(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_bounded_from(path, file, limit)
}

fn read_bounded_from(path: &Path, file: File, limit: u64) -> Result<String, KeyError> {
    let mut text = String::new();
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
    if text.len() as u64 > limit {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            len: text.len() as u64,
            limit,
        });
    }
    Ok(text)
}

/// Creates `path` with O_EXCL and `mode`, writes `bytes` and syncs.
fn write_new_file(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(KeyError::KeyFileExists {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io_err(e)),
    };
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(path);
        return Err(io_err(e));
    }
    Ok(())
}

fn append(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
        .map_err(io_err)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err)
}

/// `YYYY-MM-DD` in UTC, without a date crate (Howard Hinnant's
/// days-to-civil algorithm).
fn utc_date(now: SystemTime) -> String {
    let days = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests;
