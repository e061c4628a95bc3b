//! Signed modules (DESIGN §3): the `.sig` envelope, verify and signing keys,
//! ed25519 signing and verification, the rollback guard, and the
//! `keygen`/`sign`/`verify` tools.
//!
//! # Layout
//! - `envelope`: the `.sig` TOML envelope and the exact bytes it signs (no I/O)
//! - `keys`: `verify_keys/<module>.pub` → [`Keyring`]; `<module>.key` generation and reading
//! - `verify`: [`sign`] and [`verify`] bytes; [`verify_file`] reads a library and its `.sig` once
//! - `trust`: owners and modes of key folders, the folders above them, symlink targets
//! - `rollback`: [`SeqStore`], the per-module `seq` high-water mark, persisted durably
//! - `tools`: what `modhost keygen`, `sign`, `verify` and `package` do with keys and signatures
//!
//! # How the loader uses it
//!
//! ```text
//! let (envelope, bytes) = verify_file(&path, &keyring)?;   // signature over the bytes
//! // envelope.abi == plugin_api::ABI, else refuse
//! seq_store.check(&envelope.module, envelope.seq, &envelope.sha512, allow_rollback)?;
//! // write `bytes` to a sealed copy, dlopen it, compare manifest name/version
//! seq_store.accept(&envelope.module, envelope.seq, &envelope.sha512)?; // once loaded
//! ```
//!
//! Everything is keyed by the **signed** module name, never the file name.

mod envelope;
mod keys;
mod rollback;
pub mod tools;
mod trust;
mod verify;

pub(crate) use envelope::MAX_MODULE_NAME;
pub use envelope::{
    DOMAIN_TAG, Envelope, EnvelopeError, FORMAT, MAX_ENVELOPE_BYTES, MAX_TOML_INT,
    validate_module_name,
};
pub use keys::{GeneratedKey, KeyError, Keyring, generate_key, key_id, read_signing_key};
pub use rollback::{SeqError, SeqStore};
pub use tools::{
    KeygenReport, Published, ToolError, default_seq, key_trusted, keygen, publish, sign_file,
    verify_lib,
};
pub use trust::TrustError;
pub(crate) use verify::read_library;
pub use verify::{MAX_MODULE_BYTES, SignatureError, Verified, sig_path, sign, verify, verify_file};
