//! Login sessions and their refresh tokens.
//!
//! A login starts a session (a random id, which access tokens carry as
//! `sid`) with one refresh token. Only the token's SHA-256 is stored. A
//! refresh token works once: `/auth/refresh` marks it used and stores its
//! successor in the same transaction (rotation). Presenting a used token
//! again means two parties hold it, so the whole session ends and neither
//! can refresh (OAuth 2.0 Security BCP §4.14). Logout ends the session;
//! disabling the user or changing its password ends all of them.

use rusqlite::{OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};

use super::{
    audit::record,
    store::{Store, StoreError, now_secs},
    users::User,
};
use crate::util::sync::lock;

/// Why a refresh token was not accepted. All of them look the same to the
/// client; the kinds are for the log and the audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRefused {
    /// No such token (never issued, or its session was cleaned up).
    #[error("unknown refresh token")]
    Unknown,
    /// Past its expiry.
    #[error("expired refresh token")]
    Expired,
    /// Already exchanged once: the session is ended now.
    #[error("refresh token used twice; its session is ended")]
    Reused,
    /// Its session was ended (logout, disable, password change).
    #[error("the refresh token's session has ended")]
    SessionEnded,
    /// Its user is disabled.
    #[error("the user is disabled")]
    Disabled,
}

/// What a refresh token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOf {
    /// The session id (`sid`).
    pub session: String,
    /// Its user, as stored now.
    pub user: User,
}

/// A refresh token's row, with its session's and user's.
struct TokenRow {
    session: String,
    expires_at: i64,
    used: bool,
    ended: bool,
    name: String,
}

/// SHA-256 of a refresh token, as stored.
pub(super) fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Store {
    /// Start a login session for `user` whose first refresh token is
    /// `refresh` (stored as its digest), valid for `ttl_secs`.
    pub fn start_session(
        &self,
        actor: &str,
        user: &User,
        session: &str,
        refresh: &str,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        let now = now_secs();
        tx.execute(
            "INSERT INTO sessions (id, user_id, created_at) VALUES (?1, ?2, ?3)",
            params![session, user.id, now],
        )?;
        tx.execute(
            "INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES (?1, ?2, ?3)",
            params![digest(refresh), session, now + ttl_secs],
        )?;
        record(&tx, actor, "login", Some(&user.name), None)?;
        tx.commit()?;
        Ok(())
    }

    /// Exchange refresh token `old` for `new` (valid for `ttl_secs`) in its
    /// session. A used, expired or orphaned token is refused, and a reused
    /// one ends its session.
    pub fn rotate_refresh(
        &self,
        actor: &str,
        old: &str,
        new: &str,
        ttl_secs: i64,
    ) -> Result<Result<SessionOf, RefreshRefused>, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        let now = now_secs();
        let found = tx
            .query_row(
                "SELECT r.session_id, r.expires_at, r.used_at, s.ended_at, u.name
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
                 JOIN users u ON u.id = s.user_id WHERE r.hash = ?1",
                [digest(old)],
                |row| {
                    Ok(TokenRow {
                        session: row.get(0)?,
                        expires_at: row.get(1)?,
                        used: row.get::<_, Option<i64>>(2)?.is_some(),
                        ended: row.get::<_, Option<i64>>(3)?.is_some(),
                        name: row.get(4)?,
                    })
                },
            )
            .optional()?;
        let Some(TokenRow {
            session,
            expires_at,
            used,
            ended,
            name,
        }) = found
        else {
            return Ok(Err(RefreshRefused::Unknown));
        };
        let user = super::users::user_in(&tx, &name)?;
        if used {
            if !ended {
                tx.execute(
                    "UPDATE sessions SET ended_at = ?1 WHERE id = ?2",
                    params![now, session],
                )?;
                record(
                    &tx,
                    actor,
                    "refresh_reused",
                    Some(&name),
                    Some("session ended"),
                )?;
                tx.commit()?;
            }
            return Ok(Err(RefreshRefused::Reused));
        }
        let refused = if ended {
            Some(RefreshRefused::SessionEnded)
        } else if !user.enabled() {
            Some(RefreshRefused::Disabled)
        } else if expires_at <= now {
            Some(RefreshRefused::Expired)
        } else {
            None
        };
        if let Some(refused) = refused {
            return Ok(Err(refused));
        }
        tx.execute(
            "UPDATE refresh_tokens SET used_at = ?1 WHERE hash = ?2",
            params![now, digest(old)],
        )?;
        tx.execute(
            "INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES (?1, ?2, ?3)",
            params![digest(new), session, now + ttl_secs],
        )?;
        record(&tx, actor, "refresh", Some(&name), None)?;
        tx.commit()?;
        Ok(Ok(SessionOf { session, user }))
    }

    /// End the session refresh token `token` belongs to (logout). Returns
    /// the user's name, or `None` for an unknown token or a session that
    /// had already ended.
    pub fn end_session_of(&self, actor: &str, token: &str) -> Result<Option<String>, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT s.id, u.name FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
                 JOIN users u ON u.id = s.user_id WHERE r.hash = ?1 AND s.ended_at IS NULL",
                [digest(token)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((session, name)) = found else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE sessions SET ended_at = ?1 WHERE id = ?2",
            params![now_secs(), session],
        )?;
        record(&tx, actor, "logout", Some(&name), None)?;
        tx.commit()?;
        Ok(Some(name))
    }

    /// Whether login session `session` is still open.
    pub fn session_open(&self, session: &str) -> Result<bool, StoreError> {
        let conn = lock(&self.conn);
        Ok(conn
            .query_row(
                "SELECT ended_at IS NULL FROM sessions WHERE id = ?1",
                [session],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Delete refresh tokens past their expiry, and ended sessions with no
    /// token left, so the file does not grow with every login forever.
    pub fn prune(&self) -> Result<usize, StoreError> {
        let conn = lock(&self.conn);
        let now = now_secs();
        let tokens = conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?1", [now])?;
        let sessions = conn.execute(
            "DELETE FROM sessions WHERE id NOT IN (SELECT session_id FROM refresh_tokens)",
            [],
        )?;
        Ok(tokens + sessions)
    }
}
