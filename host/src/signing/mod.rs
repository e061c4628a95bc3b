//! Signed modules (DESIGN §3): the `.sig` envelope, verify and signing keys,
//! ed25519 signing and verification, the rollback guard, and the
//! `keygen`/`sign`/`verify` tools.

mod envelope;
mod keys;
mod rollback;
mod verify;

pub use envelope::{
    DOMAIN_TAG, Envelope, EnvelopeError, FORMAT, MAX_ENVELOPE_BYTES, MAX_TOML_INT, validate_module_name,
};
pub use keys::{GeneratedKey, KeyError, Keyring, generate_key, key_id, read_signing_key};
pub use rollback::{SeqError, SeqStore};
pub use verify::{MAX_MODULE_BYTES, SignatureError, Verified, sig_path, sign, verify, verify_file};
