//! `[[auth.tokens]]`: fixed tokens, each standing for one user.
//!
//! Tokens are compared in constant time: we hash the presented token and
//! every configured token with SHA-256 and compare the digests with
//! [`ct_eq`], visiting every entry whatever matches. Hashing first also
//! hides the configured tokens' lengths (only digests are kept), and a
//! timing difference on a digest tells an attacker nothing about the token
//! itself.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{AuthSetupError, Principal, principal::RESERVED_PREFIXES, principal::Source};
use crate::config::StaticToken;
use crate::rooms::Room;
use crate::util::secret::ct_eq;

/// The configured static tokens, ready to compare.
pub(crate) struct StaticTokens {
    entries: Vec<Entry>,
}

struct Entry {
    digest: [u8; 32],
    principal: Principal,
    /// `principal.allowed_rooms` parsed once, shared by every session of
    /// the token instead of parsed for each (issue 13: idle memory);
    /// `None` if one does not parse (each session then refuses its client).
    rooms: Option<Arc<[Room]>>,
}

impl StaticTokens {
    /// Hash the configured tokens. An empty token is a setup error: it
    /// would be a password nobody has to know.
    pub(crate) fn new(tokens: &[StaticToken]) -> Result<StaticTokens, AuthSetupError> {
        let entries = tokens
            .iter()
            .map(|t| {
                if t.token.is_empty() {
                    return Err(AuthSetupError::EmptyStaticToken {
                        user: t.user.clone(),
                    });
                }
                if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| t.user.starts_with(*p)) {
                    return Err(AuthSetupError::ReservedUserName {
                        user: t.user.clone(),
                        prefix,
                    });
                }
                let digest = sha256(&t.token);
                let rooms = t
                    .allowed_rooms
                    .iter()
                    .map(Room::parse)
                    .collect::<Result<_, _>>()
                    .ok();
                Ok(Entry {
                    digest,
                    rooms,
                    principal: Principal {
                        user: t.user.clone(),
                        roles: t.roles.clone(),
                        allowed_rooms: t.allowed_rooms.clone(),
                        source: Source::Static {
                            token_digest: digest,
                        },
                    },
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(StaticTokens { entries })
    }

    /// Number of configured tokens.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The principal of the first entry whose token equals `token`.
    pub(crate) fn lookup(&self, token: &str) -> Option<&Principal> {
        let presented = sha256(token);
        let mut found = None;
        for entry in &self.entries {
            // Every entry is compared; `found` is only set once, so a
            // duplicate token in the config resolves to the first entry.
            if ct_eq(&presented, &entry.digest) && found.is_none() {
                found = Some(&entry.principal);
            }
        }
        found
    }
}

impl StaticTokens {
    /// The principal of the entry whose token has SHA-256 `digest`, as
    /// the config says now: an open session checks its token again with it
    /// when the config changes.
    pub(crate) fn by_digest(&self, digest: &[u8; 32]) -> Option<&Principal> {
        self.entry(digest).map(|e| &e.principal)
    }

    /// The parsed rooms of the entry whose token has SHA-256 `digest`.
    pub(crate) fn rooms(&self, digest: &[u8; 32]) -> Option<Arc<[Room]>> {
        self.entry(digest).and_then(|e| e.rooms.clone())
    }

    fn entry(&self, digest: &[u8; 32]) -> Option<&Entry> {
        let mut found = None;
        for entry in &self.entries {
            if ct_eq(digest, &entry.digest) && found.is_none() {
                found = Some(entry);
            }
        }
        found
    }
}

fn sha256(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(s.as_bytes()));
    out
}
