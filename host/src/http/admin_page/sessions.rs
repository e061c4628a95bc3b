//! The admin page's login sessions: a random cookie value mapped to who
//! logged in and the session's CSRF token, held in memory only (a restart
//! logs everyone out, which is what an operator restarting the host
//! expects). The table is bounded: expired sessions are swept on each
//! login, and past [`MAX_SESSIONS`] the oldest one is dropped, so logins
//! cannot grow the host; only a correct token or admin password makes a
//! session at all.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use crate::util::sync::lock;

/// Most page sessions at once.
pub(super) const MAX_SESSIONS: usize = 64;
/// How long a page session lasts from its login (no sliding renewal: a
/// stolen cookie is worth at most this).
pub(super) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// How a page session was opened; re-checked on every request, so a
/// rotated token or an account that lost `admin` ends its sessions.
#[derive(Clone)]
pub(super) enum Login {
    /// The `[admin] token` (kept to compare with the current config; the
    /// config holds it anyway, and it is never logged).
    Token(String),
    /// An account with the admin role: its name, and the login session
    /// (and refresh token) `/auth/login`'s check opened in the store, so
    /// that a password change or `modhost user disable` ends the page
    /// session too, and logging out ends the store's session.
    Account {
        name: String,
        session: String,
        refresh: String,
    },
}

/// A logged-in page session.
#[derive(Clone)]
pub(super) struct PageSession {
    pub(super) login: Login,
    /// Sent back with every state-changing request (form field or header).
    pub(super) csrf: String,
    created: Instant,
}

impl PageSession {
    /// Who did it, for the audit log: the account's name, or
    /// `admin-token`.
    pub(super) fn actor(&self) -> String {
        match &self.login {
            Login::Token(_) => "admin-token".to_owned(),
            Login::Account { name, .. } => name.clone(),
        }
    }
}

/// The sessions, keyed by the SHA-256 of the cookie value (a dump of the
/// table holds no usable cookie).
#[derive(Default)]
pub(super) struct PageSessions {
    table: Mutex<HashMap<[u8; 32], PageSession>>,
}

fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

/// 32 random bytes as hex.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

impl PageSessions {
    /// Starts a session for `login`; returns the cookie value and the
    /// session.
    pub(super) fn start(&self, login: Login) -> Result<(String, PageSession), getrandom::Error> {
        let cookie = random_hex()?;
        let session = PageSession {
            login,
            csrf: random_hex()?,
            created: Instant::now(),
        };
        let mut table = lock(&self.table);
        let now = Instant::now();
        table.retain(|_, s| now.duration_since(s.created) < SESSION_TTL);
        while table.len() >= MAX_SESSIONS {
            let oldest = table.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k);
            match oldest {
                Some(k) => table.remove(&k),
                None => break,
            };
        }
        table.insert(key(&cookie), session.clone());
        Ok((cookie, session))
    }

    /// The live session of cookie value `cookie`.
    pub(super) fn get(&self, cookie: &str) -> Option<PageSession> {
        let mut table = lock(&self.table);
        let k = key(cookie);
        let session = table.get(&k)?;
        if session.created.elapsed() >= SESSION_TTL {
            table.remove(&k);
            return None;
        }
        Some(session.clone())
    }

    /// Ends the session of `cookie` (logout, or its login no longer stands).
    pub(super) fn end(&self, cookie: &str) {
        lock(&self.table).remove(&key(cookie));
    }

    /// Sessions held now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.table).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_bounded_and_drops_the_oldest_first() {
        let sessions = PageSessions::default();
        let (first, _) = sessions.start(Login::Token("a".into())).unwrap();
        let mut last = String::new();
        for _ in 0..MAX_SESSIONS {
            last = sessions.start(Login::Token("t".into())).unwrap().0;
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get(&first).is_none(), "the oldest was dropped");
        assert!(sessions.get(&last).is_some());
        sessions.end(&last);
        assert!(sessions.get(&last).is_none());
    }
}
