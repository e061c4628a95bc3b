//! Password hashing: argon2id with the argon2 crate's defaults (RFC 9106's
//! second recommendation as OWASP lists it: m = 19 MiB, t = 2, p = 1),
//! stored as PHC strings so the parameters travel with each hash and can be
//! raised later without breaking old ones.
//!
//! A login for a user who does not exist (or has no password) is verified
//! against a dummy hash made at start, so it costs the same time as a
//! wrong password and the timing does not tell which names exist.
//!
//! Verifying reuses the 19 MiB work area of an earlier login
//! ([`Passwords::verify`]) instead of allocating one per hash: glibc keeps
//! a freed block that large in the thread's arena, and with logins spread
//! over the blocking pool's threads the host held 810 MiB after 120
//! logins. With the pool it holds the areas of the hashes that ran at
//! once, no more.

use std::sync::Mutex;

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version, password_hash::PasswordHasher as _,
};

use crate::util::{secret::ct_eq, sync::lock};

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

/// Largest work area a stored hash may ask for when it is verified: 64
/// MiB, above the 19 MiB every hash made here uses.
const MAX_VERIFY_BLOCKS: usize = 64 * 1024;

/// Hashes and verifies passwords.
pub struct Passwords {
    /// A hash of a random password, verified for unknown users.
    dummy: String,
    /// Work areas of finished verifications, for the next ones.
    areas: Mutex<Vec<Vec<Block>>>,
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
            areas: Mutex::new(Vec::new()),
        })
    }

    /// Whether `password` matches `hash`; with no hash, the dummy is
    /// verified and the answer is `false`. Takes one hash's time either way.
    pub fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let oversized = password.len() > MAX_PASSWORD_BYTES;
        let password = if oversized { "" } else { password };
        match hash {
            Some(hash) => self.verify_one(password, hash) && !oversized,
            None => {
                self.verify_one(password, &self.dummy);
                false
            }
        }
    }

    /// Recompute `hash` (a PHC string) from `password` in a pooled work
    /// area and compare in constant time. An unreadable hash never matches.
    fn verify_one(&self, password: &str, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        let blocks = params.block_count();
        if blocks > MAX_VERIFY_BLOCKS {
            return false;
        }
        let mut area = lock(&self.areas).pop().unwrap_or_default();
        if area.len() < blocks {
            area.resize(blocks, Block::new());
        }
        let mut out = vec![0u8; expected.len()];
        let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut area[..blocks],
        );
        lock(&self.areas).push(area);
        computed.is_ok() && ct_eq(&out, expected.as_bytes())
    }
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
