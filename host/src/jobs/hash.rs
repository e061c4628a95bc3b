//! A job's password hash, in the format its app reads: argon2id PHC
//! strings (default), Apache's `$apr1$` MD5-crypt (htpasswd files, the
//! seed's conduit app) or Jupyter's `sha512:<salt>:<hex>` (the seed's
//! notebook app), or Apache's digest line `user:realm:md5` (htdigest, the
//! seed's conduit relay).
//!
//! The password itself is never stored or replied; only the hash is
//! written, to the job's directory (0600), for the app.

use argon2::{Argon2, password_hash::PasswordHasher as _};
use md5::{Digest as _, Md5};
use sha2::{Digest as _, Sha512};

use crate::config::HashAlgorithm;

/// Longest password a launch accepts: hashing is bounded work.
pub const MAX_JOB_PASSWORD_BYTES: usize = 1024;

/// MD5-crypt's alphabet for its output.
const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `password` hashed with `algorithm` and a fresh random salt; `user` and
/// `realm` are only part of an `apache_digest` line (which has no salt).
pub(super) fn hash(
    algorithm: HashAlgorithm,
    password: &str,
    user: &str,
    realm: &str,
) -> Result<String, String> {
    match algorithm {
        HashAlgorithm::ApacheDigest => {
            let digest = Md5::new()
                .chain_update(format!("{user}:{realm}:{password}"))
                .finalize();
            Ok(format!("{user}:{realm}:{}", hex::encode(digest)))
        }
        HashAlgorithm::Argon2id => Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| format!("argon2id: {e}")),
        HashAlgorithm::ApacheMd5 => {
            let salt = salt_chars(8)?;
            Ok(apr1(password.as_bytes(), salt.as_bytes()))
        }
        HashAlgorithm::Sha512 => {
            let mut raw = [0u8; 6];
            getrandom::fill(&mut raw).map_err(|e| format!("no randomness for a salt: {e}"))?;
            let salt = hex::encode(raw);
            let digest = Sha512::new()
                .chain_update(password.as_bytes())
                .chain_update(salt.as_bytes())
                .finalize();
            Ok(format!("sha512:{salt}:{}", hex::encode(digest)))
        }
    }
}

/// `n` random characters of MD5-crypt's salt alphabet.
fn salt_chars(n: usize) -> Result<String, String> {
    let mut raw = vec![0u8; n];
    getrandom::fill(&mut raw).map_err(|e| format!("no randomness for a salt: {e}"))?;
    Ok(raw
        .iter()
        .map(|b| ITOA64[usize::from(b & 0x3f)] as char)
        .collect())
}

/// Apache's MD5-crypt (`$apr1$<salt>$<hash>`): Poul-Henning Kamp's
/// FreeBSD MD5-crypt with the magic `$apr1$`, as `htpasswd -m` makes it.
fn apr1(password: &[u8], salt: &[u8]) -> String {
    const MAGIC: &[u8] = b"$apr1$";
    let salt = &salt[..salt.len().min(8)];
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(MAGIC)
        .chain_update(salt);
    for chunk in password.chunks(16) {
        ctx.update(&alternate[..chunk.len()]);
    }
    let mut i = password.len();
    while i != 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(digest);
        } else {
            c.update(password);
        }
        digest = c.finalize();
    }
    let d = digest;
    let mut out = String::with_capacity(22);
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let triple = |a: u8, b: u8, c: u8| (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
    to64(triple(d[0], d[6], d[12]), 4);
    to64(triple(d[1], d[7], d[13]), 4);
    to64(triple(d[2], d[8], d[14]), 4);
    to64(triple(d[3], d[9], d[15]), 4);
    to64(triple(d[4], d[10], d[5]), 4);
    to64(u32::from(d[11]), 2);
    format!("$apr1${}${out}", String::from_utf8_lossy(salt))
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHash, PasswordVerifier as _};

    use super::*;

    #[test]
    fn apr1_matches_htpasswd() {
        // Vectors from htpasswd -m (and the htpasswd-verify and passlib docs).
        assert_eq!(
            apr1(b"password", b"RandSalt"),
            "$apr1$RandSalt$PgCXHRrkpSt4cbyC2C6bm/"
        );
        assert_eq!(
            apr1(b"foo", b"mYJd83wW"),
            "$apr1$mYJd83wW$IO.6aK3G0d4mHxcImhPX50"
        );
        let fresh = hash(HashAlgorithm::ApacheMd5, "s3cret pass", "", "").unwrap();
        let salt = &fresh["$apr1$".len().."$apr1$".len() + 8];
        assert_eq!(fresh, apr1(b"s3cret pass", salt.as_bytes()));
    }

    #[test]
    fn argon2id_and_sha512_verify() {
        let phc = hash(HashAlgorithm::Argon2id, "pw", "", "").unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"px", &parsed).is_err());

        let sha = hash(HashAlgorithm::Sha512, "pw", "", "").unwrap();
        let parts: Vec<&str> = sha.split(':').collect();
        assert_eq!(parts[0], "sha512");
        let want = Sha512::new()
            .chain_update(b"pw")
            .chain_update(parts[1].as_bytes())
            .finalize();
        assert_eq!(parts[2], hex::encode(want));
    }

    #[test]
    fn apache_digest_is_an_htdigest_line() {
        // python3 -c "import hashlib; print(hashlib.md5(b'alice:test:pw').hexdigest())"
        assert_eq!(
            hash(HashAlgorithm::ApacheDigest, "pw", "alice", "test").unwrap(),
            "alice:test:f568ad0b3ba31f978e9cb1788c7c2f9e"
        );
    }
}
