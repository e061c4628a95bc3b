//! The audit log: who did what to which user, and when. Entries are
//! written in the same transaction as the change they describe, so the log
//! never claims a change that did not happen, nor misses one that did.
//! Nothing secret goes in: no password, hash or token, only names, role
//! names and addresses.

use rusqlite::{Transaction, params};

use super::store::{Store, StoreError, now_secs};
use crate::util::sync::lock;

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Who did it: `cli`, `host`, a user's name, or a client address.
    pub actor: String,
    /// What: `user_add`, `login`, `login_failed`, `logout`, …
    pub action: String,
    /// The user it was done to.
    pub subject: Option<String>,
    /// What changed, e.g. role names.
    pub detail: Option<String>,
}

/// Append an entry inside `tx`.
pub(super) fn record(
    tx: &Transaction<'_>,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_secs(), actor, action, subject, detail],
    )?;
    Ok(())
}

impl Store {
    /// Append an entry on its own (for events that change nothing else,
    /// such as a refused login).
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        record(&tx, actor, action, subject, detail)?;
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(
            "SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |row| {
            Ok(AuditEntry {
                at: row.get(0)?,
                actor: row.get(1)?,
                action: row.get(2)?,
                subject: row.get(3)?,
                detail: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
