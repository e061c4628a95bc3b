//! Users in the store: add, look up, list, disable and enable, roles,
//! password. Each change is one transaction with its audit entry and bumps
//! the user's `changed_at`, which is how a running host can learn whose
//! rights changed ([`Store::changed_since`]).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Row, Transaction, params};

use super::{
    audit::record,
    store::{Store, StoreError, now_secs},
};
use crate::util::sync::lock;

/// Longest user name.
pub const MAX_NAME_CHARS: usize = 64;

/// A user as stored (the password hash stays in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// The login name.
    pub name: String,
    /// Optional email address.
    pub email: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// Unix seconds when the user was disabled; `None` while enabled.
    pub disabled_at: Option<i64>,
    /// Whether the user has a password (and so can log in with one).
    pub has_password: bool,
    /// Unix seconds of the last change to roles, password or disabled.
    pub changed_at: i64,
}

impl User {
    /// Whether the user may log in and use its tokens.
    pub fn enabled(&self) -> bool {
        self.disabled_at.is_none()
    }
}

/// Why a name cannot be a user name, or `None` when it can: 1 to 64 of
/// ASCII letters, digits and `._@-`. The name goes into room patterns
/// (`{user}`), logs and `caller.user`, so nothing that needs quoting.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Some(format!(
            "a user name has 1 to {MAX_NAME_CHARS} characters, not {}",
            name.chars().count()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')))
    {
        return Some(format!(
            "{c:?} is not allowed in a user name; use ASCII letters, digits and . _ @ -"
        ));
    }
    None
}

const USER_COLUMNS: &str =
    "id, name, email, roles, disabled_at, password_hash IS NOT NULL, changed_at";

fn user_from(row: &Row<'_>) -> rusqlite::Result<User> {
    let roles: String = row.get(3)?;
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        // Written only by this module, as a JSON array of strings.
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        disabled_at: row.get(4)?,
        has_password: row.get(5)?,
        changed_at: row.get(6)?,
    })
}

fn roles_json(roles: &[String]) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".to_owned())
}

/// The user named `name` inside `tx`, or [`StoreError::NoSuchUser`].
pub(super) fn user_in(tx: &Transaction<'_>, name: &str) -> Result<User, StoreError> {
    tx.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
        [name],
        user_from,
    )
    .optional()?
    .ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))
}

/// End every open login session of user `id` (its refresh tokens stop
/// working): on disable and on a password change.
pub(super) fn end_sessions(tx: &Transaction<'_>, user_id: i64) -> Result<usize, StoreError> {
    Ok(tx.execute(
        "UPDATE sessions SET ended_at = ?1 WHERE user_id = ?2 AND ended_at IS NULL",
        params![now_secs(), user_id],
    )?)
}

impl Store {
    /// Whether `state_dir`'s store holds at least one user, read without
    /// making or migrating the file: the job launcher makes the same file
    /// for its registry, and a start that only looks must not turn a
    /// jobs-only file into an account store.
    pub fn has_users_in(state_dir: &Path) -> Result<bool, StoreError> {
        let path = state_dir.join(super::DB_FILE);
        if !path.exists() {
            return Ok(false);
        }
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
                StoreError::Open {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                }
            })?;
        conn.busy_timeout(super::store::BUSY_TIMEOUT)?;
        // A file cut short between its making and its first migration has
        // no tables yet: no users.
        let has_table: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'users')",
            [],
            |row| row.get(0),
        )?;
        if !has_table {
            return Ok(false);
        }
        Ok(conn.query_row("SELECT EXISTS(SELECT 1 FROM users)", [], |row| row.get(0))?)
    }

    /// Add a user. `password_hash` is an argon2id PHC string (see
    /// `passwords`), or `None` for a user who cannot log in with a
    /// password yet.
    pub fn add_user(
        &self,
        actor: &str,
        name: &str,
        email: Option<&str>,
        password_hash: Option<&str>,
        roles: &[String],
    ) -> Result<User, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        let now = now_secs();
        let inserted = tx.execute(
            "INSERT INTO users (name, email, password_hash, roles, created_at, changed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(name) DO NOTHING",
            params![name, email, password_hash, roles_json(roles), now],
        )?;
        if inserted == 0 {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        record(&tx, actor, "user_add", Some(name), Some(&roles.join(",")))?;
        let user = user_in(&tx, name)?;
        tx.commit()?;
        Ok(user)
    }

    /// The user named `name`, if any.
    pub fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let conn = lock(&self.conn);
        Ok(conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                [name],
                user_from,
            )
            .optional()?)
    }

    /// The user and its password hash, for a login.
    pub(super) fn user_with_hash(
        &self,
        name: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let conn = lock(&self.conn);
        Ok(conn
            .query_row(
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = ?1"),
                [name],
                |row| Ok((user_from(row)?, row.get(7)?)),
            )
            .optional()?)
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
        let users = stmt.query_map([], user_from)?;
        Ok(users.collect::<Result<_, _>>()?)
    }

    /// Users whose roles, password or disabled state changed at or after
    /// `since` (Unix seconds): what a running host re-checks open sessions
    /// against.
    pub fn changed_since(&self, since: i64) -> Result<Vec<User>, StoreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE changed_at >= ?1 ORDER BY name"
        ))?;
        let users = stmt.query_map([since], user_from)?;
        Ok(users.collect::<Result<_, _>>()?)
    }

    /// Disable (`true`) or enable a user. Disabling ends its login
    /// sessions: its refresh tokens stop working, and so do its access
    /// tokens at their next use (the authenticator checks the store).
    /// Returns the user as it is now; doing what is already done changes
    /// nothing and logs nothing.
    pub fn set_disabled(
        &self,
        actor: &str,
        name: &str,
        disabled: bool,
    ) -> Result<User, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        let user = user_in(&tx, name)?;
        if user.disabled_at.is_some() == disabled {
            return Ok(user);
        }
        let now = now_secs();
        tx.execute(
            "UPDATE users SET disabled_at = ?1, changed_at = ?2 WHERE id = ?3",
            params![disabled.then_some(now), now, user.id],
        )?;
        let action = if disabled {
            end_sessions(&tx, user.id)?;
            "user_disable"
        } else {
            "user_enable"
        };
        record(&tx, actor, action, Some(name), None)?;
        let user = user_in(&tx, name)?;
        tx.commit()?;
        Ok(user)
    }

    /// Add the roles in `add` and remove those in `remove` (in that order,
    /// so a role in both ends up removed). Returns the user as it is now.
    pub fn change_roles(
        &self,
        actor: &str,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<User, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        let user = user_in(&tx, name)?;
        let mut roles = user.roles.clone();
        for role in add {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
        roles.retain(|r| !remove.contains(r));
        if roles != user.roles {
            tx.execute(
                "UPDATE users SET roles = ?1, changed_at = ?2 WHERE id = ?3",
                params![roles_json(&roles), now_secs(), user.id],
            )?;
            let detail = format!("{} → {}", user.roles.join(","), roles.join(","));
            record(&tx, actor, "user_roles", Some(name), Some(&detail))?;
        }
        let user = user_in(&tx, name)?;
        tx.commit()?;
        Ok(user)
    }

    /// Set a user's password hash, ending its login sessions (whoever knew
    /// the old password may hold a refresh token).
    pub fn set_password_hash(
        &self,
        actor: &str,
        name: &str,
        hash: &str,
    ) -> Result<User, StoreError> {
        let mut conn = lock(&self.conn);
        let tx = conn.transaction()?;
        let user = user_in(&tx, name)?;
        tx.execute(
            "UPDATE users SET password_hash = ?1, changed_at = ?2 WHERE id = ?3",
            params![hash, now_secs(), user.id],
        )?;
        end_sessions(&tx, user.id)?;
        record(&tx, actor, "user_passwd", Some(name), None)?;
        let user = user_in(&tx, name)?;
        tx.commit()?;
        Ok(user)
    }
}
