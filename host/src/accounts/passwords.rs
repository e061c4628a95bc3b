//! Password hashing: argon2id with the argon2 crate's defaults (RFC 9106's
//! second recommendation as OWASP lists it: m = 19 MiB, t = 2, p = 1),
//! stored as PHC strings so the parameters travel with each hash and can be
//! raised later without breaking old ones.
//!
//! A login for a user who does not exist (or has no password) is verified
//! against a dummy hash made at start, so it costs the same time as a
//! wrong password and the timing does not tell which names exist.

use argon2::{
    Argon2,
    password_hash::{PasswordHasher as _, PasswordVerifier as _},
};

/// Shortest password `modhost user` accepts.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest password accepted anywhere: hashing is bounded work.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password could not be hashed or is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error(
        "a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes; this one has {0} characters"
    )]
    Length(usize),
    /// The hasher failed (no randomness for the salt).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes and verifies passwords.
pub struct Passwords {
    /// A hash of a random password, verified for unknown users.
    dummy: String,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords(argon2id)")
    }
}

impl Passwords {
    /// Ready to verify; makes the dummy hash (one hash's time).
    pub fn new() -> Result<Passwords, PasswordError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(Passwords {
            dummy: hash_unchecked(&hex::encode(random))?,
        })
    }

    /// Whether `password` matches `hash`; with no hash, the dummy is
    /// verified and the answer is `false`. Takes one hash's time either way.
    pub fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let oversized = password.len() > MAX_PASSWORD_BYTES;
        let password = if oversized { "" } else { password };
        match hash {
            Some(hash) => verify_one(password, hash) && !oversized,
            None => {
                verify_one(password, &self.dummy);
                false
            }
        }
    }
}

fn verify_one(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// The argon2id PHC string of `password`, if it is of an acceptable length.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Length(chars));
    }
    hash_unchecked(password)
}

fn hash_unchecked(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}
