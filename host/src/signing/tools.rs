//! What `modhost keygen`, `modhost sign`, `modhost verify` and `modhost
//! package` do with keys and signatures. The binary's `cli` parses the
//! command line, calls these, and prints the report or the error; nothing
//! here prints.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::envelope::{Envelope, EnvelopeError, MAX_TOML_INT};
use super::keys::{KeyError, Keyring, generate_key, read_signing_key};
use super::verify::{SignatureError, Verified, read_library, read_signed, sig_path, sign, verify};
use crate::util::fs::write_atomically;

/// Why a signing tool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// Loading, generating or reading keys failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The library is not (validly) signed, or could not be read.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A value given to `sign` cannot go into an envelope.
    #[error("cannot sign: {0}")]
    InvalidField(#[from] EnvelopeError),
    /// `--seq` is above what an envelope can hold.
    #[error("--seq {seq} is too large: the highest possible seq is {MAX_TOML_INT}")]
    SeqTooLarge {
        /// The refused seq.
        seq: u64,
    },
    /// The `.sig` could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Good signature, but for another ABI than this host's.
    #[error(
        "module {module:?} was signed for ABI {signed:?} but this host has ABI {expected:?}: \
         rebuild it against this host's modhost-plugin-api and sign it again"
    )]
    AbiMismatch {
        /// The signed module.
        module: String,
        /// The ABI in the envelope.
        signed: String,
        /// The host's ABI.
        expected: String,
    },
}

/// What `modhost keygen` did; `Display` is the text to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeygenReport {
    /// The module the key signs for.
    pub module: String,
    /// The private key file (mode 0600).
    pub key_file: PathBuf,
    /// The `.pub` file the public key was appended to.
    pub pub_file: PathBuf,
    /// The new key's id.
    pub key_id: String,
}

impl fmt::Display for KeygenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "new signing key {} for module {:?}",
            self.key_id, self.module
        )?;
        writeln!(
            f,
            "  private key: {} (mode 0600; keep it secret, never commit it)",
            self.key_file.display()
        )?;
        write!(
            f,
            "  public key appended to {} (commit it; hosts load modules signed with this key)",
            self.pub_file.display()
        )
    }
}

/// `modhost keygen <module> --out <out_dir>`: a new key pair for `module`.
pub fn keygen(
    module: &str,
    out_dir: &Path,
    verify_keys_dir: &Path,
) -> Result<KeygenReport, ToolError> {
    let made = generate_key(module, out_dir, verify_keys_dir)?;
    Ok(KeygenReport {
        module: made.module,
        key_file: made.key_file,
        pub_file: made.pub_file,
        key_id: made.key_id,
    })
}

/// Reads `lib` and the key in `key_file`, and signs the bytes read: the
/// library's bytes and the checked envelope over them.
fn read_and_sign(
    lib: &Path,
    key_file: &Path,
    module: &str,
    version: &str,
    seq: u64,
    abi: &str,
) -> Result<(Vec<u8>, Envelope), ToolError> {
    if seq > MAX_TOML_INT {
        return Err(ToolError::SeqTooLarge { seq });
    }
    let key = read_signing_key(key_file)?;
    let bytes = read_library(lib)?;
    let envelope = sign(&bytes, &key, module, version, seq, abi);
    envelope.validate()?;
    Ok((bytes, envelope))
}

/// `modhost sign`: signs `lib` with the key in `key_file` and writes
/// `<lib>.sig` atomically (a reader sees the old `.sig` or the new one,
/// never half of one). Returns the envelope written.
pub fn sign_file(
    lib: &Path,
    key_file: &Path,
    module: &str,
    version: &str,
    seq: u64,
    abi: &str,
) -> Result<Envelope, ToolError> {
    let (_, envelope) = read_and_sign(lib, key_file, module, version, seq, abi)?;
    let sig = sig_path(lib);
    // 0644: a signature is public, and the host reading it may run as
    // another user.
    write_atomically(&sig, envelope.to_toml().as_bytes(), 0o644).map_err(|e| ToolError::Write {
        path: sig.clone(),
        source: e.source,
    })?;
    Ok(envelope)
}

/// Whether the public half of the key in `key_file` is one of `module`'s
/// trusted keys in `verify_keys_dirs`: a host reading those folders
/// refuses anything else that key signs as `module` ("no verify key").
pub fn key_trusted(
    key_file: &Path,
    module: &str,
    verify_keys_dirs: &[PathBuf],
) -> Result<bool, ToolError> {
    let key = read_signing_key(key_file)?;
    let keyring = Keyring::load(verify_keys_dirs)?;
    Ok(keyring.keys_for(module).contains(&key.verifying_key()))
}

/// What [`publish`] wrote.
#[derive(Debug, Clone)]
pub struct Published {
    /// `<dir>/<module>.so`.
    pub lib: PathBuf,
    /// Its `.sig`.
    pub sig: PathBuf,
    /// The envelope in the `.sig`.
    pub envelope: Envelope,
}

/// `modhost package`'s last step: signs the build `lib` and writes it into
/// the modules folder `dir` as `<module>.so`, then its `.sig`. Each goes to
/// a hidden temp file first and is renamed into place, so a watching host
/// never reads half a file; between the two renames it may see the new
/// `.so` beside the old `.sig`, a signature mismatch it retries quietly.
pub fn publish(
    lib: &Path,
    key_file: &Path,
    dir: &Path,
    module: &str,
    version: &str,
    seq: u64,
    abi: &str,
) -> Result<Published, ToolError> {
    let (bytes, envelope) = read_and_sign(lib, key_file, module, version, seq, abi)?;
    let dest = dir.join(format!("{module}.so"));
    let sig = sig_path(&dest);
    for (path, data) in [
        (&dest, bytes.as_slice()),
        (&sig, envelope.to_toml().as_bytes()),
    ] {
        write_atomically(path, data, 0o644).map_err(|e| ToolError::Write {
            path: path.clone(),
            source: e.source,
        })?;
    }
    Ok(Published {
        lib: dest,
        sig,
        envelope,
    })
}

/// `modhost verify`: checks `lib` against the keys in `verify_keys_dirs`
/// and that it was signed for `expected_abi` (the host's ABI id).
pub fn verify_lib(
    lib: &Path,
    verify_keys_dirs: &[PathBuf],
    expected_abi: &str,
) -> Result<Verified, ToolError> {
    let keyring = Keyring::load(verify_keys_dirs)?;
    let (envelope, bytes) = read_signed(lib)?;
    // Signature first: until it verifies, the envelope's abi is just text
    // anyone could have written.
    let verified = verify(&bytes, &envelope, &keyring)?;
    if verified.abi != expected_abi {
        return Err(ToolError::AbiMismatch {
            module: verified.module,
            signed: verified.abi,
            expected: expected_abi.to_owned(),
        });
    }
    Ok(verified)
}

/// The default `--seq`: the current Unix time in seconds, so successive
/// builds signed without `--seq` still increase.
pub fn default_seq() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const ABI: &str = "modhost-plugin-api=0.1;abi_stable=0.11;x86_64-unknown-linux-gnu";

    struct Setup {
        _dir: tempfile::TempDir,
        lib: PathBuf,
        key: PathBuf,
        verify_keys: PathBuf,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let verify_keys = dir.path().join("verify_keys");
        let report = keygen("notes", &dir.path().join("keys"), &verify_keys).unwrap();
        let lib = dir.path().join("libnotes.so");
        fs::write(&lib, b"\x7fELF pretend library").unwrap();
        Setup {
            lib,
            key: report.key_file,
            verify_keys,
            _dir: dir,
        }
    }

    #[test]
    fn keygen_sign_verify() {
        let s = setup();
        let env = sign_file(&s.lib, &s.key, "notes", "1.4.2", 42, ABI).unwrap();
        let on_disk = fs::read_to_string(sig_path(&s.lib)).unwrap();
        assert_eq!(Envelope::parse(&on_disk).unwrap(), env);
        let ok = verify_lib(&s.lib, std::slice::from_ref(&s.verify_keys), ABI).unwrap();
        assert_eq!(
            (ok.module.as_str(), ok.version.as_str(), ok.seq),
            ("notes", "1.4.2", 42)
        );
        assert_eq!(ok.key_id, env.key_id);
        assert!(ok.to_string().contains("seq 42"), "{ok}");
        // No temp file left next to the library.
        let names: Vec<_> = fs::read_dir(s.lib.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().contains(".tmp-")),
            "{names:?}"
        );
    }

    #[test]
    fn resigning_replaces_the_sig() {
        let s = setup();
        sign_file(&s.lib, &s.key, "notes", "1", 1, ABI).unwrap();
        fs::write(&s.lib, b"new build").unwrap();
        sign_file(&s.lib, &s.key, "notes", "2", 2, ABI).unwrap();
        let ok = verify_lib(&s.lib, std::slice::from_ref(&s.verify_keys), ABI).unwrap();
        assert_eq!(ok.seq, 2);
    }

    #[test]
    fn verify_lib_refuses_other_abi_and_names_both() {
        let s = setup();
        sign_file(
            &s.lib,
            &s.key,
            "notes",
            "1",
            1,
            "modhost-plugin-api=0.0;abi_stable=0.11;x",
        )
        .unwrap();
        let err = verify_lib(&s.lib, std::slice::from_ref(&s.verify_keys), ABI).unwrap_err();
        assert!(matches!(err, ToolError::AbiMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("api=0.0") && msg.contains(ABI), "{msg}");
    }

    #[test]
    fn verify_lib_reports_tampering_and_missing_sig() {
        let s = setup();
        let dirs = std::slice::from_ref(&s.verify_keys);
        let err = verify_lib(&s.lib, dirs, ABI).unwrap_err();
        assert!(
            matches!(
                err,
                ToolError::Signature(SignatureError::MissingSignature { .. })
            ),
            "{err}"
        );
        sign_file(&s.lib, &s.key, "notes", "1", 1, ABI).unwrap();
        let mut bytes = fs::read(&s.lib).unwrap();
        bytes[0] ^= 0x80;
        fs::write(&s.lib, bytes).unwrap();
        let err = verify_lib(&s.lib, dirs, ABI).unwrap_err();
        assert!(
            matches!(
                err,
                ToolError::Signature(SignatureError::DigestMismatch { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn sign_refuses_bad_fields() {
        let s = setup();
        let err = sign_file(&s.lib, &s.key, "Notes", "1", 1, ABI).unwrap_err();
        assert!(matches!(err, ToolError::InvalidField(_)), "{err}");
        let err = sign_file(&s.lib, &s.key, "notes", "1", u64::MAX, ABI).unwrap_err();
        assert!(matches!(err, ToolError::SeqTooLarge { .. }), "{err}");
        let err = sign_file(&s.lib, &s.key, "notes", "", 1, ABI).unwrap_err();
        assert!(matches!(err, ToolError::InvalidField(_)), "{err}");
        assert!(!sig_path(&s.lib).exists());
    }

    #[test]
    fn key_trusted_only_for_its_own_module() {
        let s = setup();
        let dirs = std::slice::from_ref(&s.verify_keys);
        assert!(key_trusted(&s.key, "notes", dirs).unwrap());
        assert!(!key_trusted(&s.key, "echo", dirs).unwrap());
        let other = keygen(
            "notes",
            &s._dir.path().join("other"),
            &s._dir.path().join("vk2"),
        )
        .unwrap();
        assert!(!key_trusted(&other.key_file, "notes", dirs).unwrap());
    }

    #[test]
    fn publish_writes_a_verifiable_pair_named_after_the_module() {
        let s = setup();
        let plugins = s._dir.path().join("plugins");
        fs::create_dir(&plugins).unwrap();
        let out = publish(&s.lib, &s.key, &plugins, "notes", "1.0.0", 7, ABI).unwrap();
        assert_eq!(out.lib, plugins.join("notes.so"));
        assert_eq!(fs::read(&out.lib).unwrap(), fs::read(&s.lib).unwrap());
        let ok = verify_lib(&out.lib, std::slice::from_ref(&s.verify_keys), ABI).unwrap();
        assert_eq!((ok.seq, ok.version.as_str()), (7, "1.0.0"));
        let names: Vec<_> = fs::read_dir(&plugins)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn keygen_report_mentions_files() {
        let dir = tempfile::tempdir().unwrap();
        let report = keygen("echo", dir.path(), &dir.path().join("vk")).unwrap();
        let text = report.to_string();
        assert!(
            text.contains("echo.key") && text.contains("echo.pub") && text.contains(&report.key_id),
            "{text}"
        );
    }

    #[test]
    fn default_seq_is_unix_seconds() {
        let seq = default_seq();
        assert!(seq > 1_700_000_000 && seq < MAX_TOML_INT, "{seq}");
    }
}
