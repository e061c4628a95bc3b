//! Comparing secrets (tokens, digests of tokens) without telling an
//! attacker, through the time a comparison takes, how much of a guess was
//! right.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// `a == b`, in a time that does not depend on the bytes of either, with
/// no early return when the lengths differ.
///
/// Both sides are hashed with SHA-256 and the two 32-byte digests are
/// compared with [`subtle`]'s `ct_eq`, which looks at every byte and keeps
/// the optimiser from adding a branch on the data. Equal digests mean equal
/// inputs (SHA-256 is collision resistant), so the answer is the same as
/// `a == b`.
///
/// Why hash instead of padding the shorter side:
/// - inputs of different lengths take the same path as any other pair:
///   there is no length branch to forget, and no loop whose trip count is
///   the longer (possibly secret) length byte for byte;
/// - what remains visible is the hashing time, which grows with each
///   input's length in 64-byte blocks only: the caller's own input it
///   already knows, and of the secret at most its block count. A caller
///   that must hide even that stores the secret's digest (fixed length)
///   and passes that, as `auth/tokens.rs` does.
///
/// It costs two SHA-256 runs per comparison (well under a microsecond for
/// token-sized inputs), paid once per authentication attempt.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// Configured secrets kept only as SHA-256 digests, so that checking a
/// presented token hashes the presented bytes and nothing else: the time
/// taken depends on what the caller sent and on how many secrets there
/// are, never on a secret's length or on which one matched (every digest
/// is compared).
#[derive(Debug, Clone, Default)]
pub(crate) struct SecretSet {
    digests: Vec<[u8; 32]>,
}

impl SecretSet {
    /// The digests of `secrets`, computed once (at start-up and on each
    /// config reload), not per request.
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> SecretSet {
        SecretSet {
            digests: secrets.into_iter().map(digest).collect(),
        }
    }

    /// Whether `presented` is one of the secrets.
    pub(crate) fn contains(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let mut found = subtle::Choice::from(0);
        for known in &self.digests {
            found |= presented.ct_eq(known);
        }
        found.into()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::{SecretSet, ct_eq};

    #[test]
    fn a_secret_set_matches_exactly_its_members() {
        let set = SecretSet::new(["trigger-a", "a much longer trigger secret than the first"]);
        assert!(set.contains("trigger-a"));
        assert!(set.contains("a much longer trigger secret than the first"));
        assert!(!set.contains("trigger-"));
        assert!(!set.contains("trigger-ab"));
        assert!(!set.contains(""));
        assert!(!SecretSet::new([]).contains(""));
    }

    #[test]
    fn equal_only_for_equal_bytes() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"admin-token", b"admin-token"));
        assert!(!ct_eq(b"admin-token", b"admin-tokeN"));
        // Prefixes and different lengths are different, not an error.
        assert!(!ct_eq(b"admin", b"admin-token"));
        assert!(!ct_eq(b"admin-token", b""));
        assert!(!ct_eq(&[0u8; 32], &[0u8; 33]));
    }
}
