//! What changed in the store since the host last looked, whoever changed
//! it: this host (logins, logouts) or another process (`modhost user
//! disable` writes the same file). The audit log is the feed: every change
//! writes its entry in the same transaction, in order, under a growing
//! row id, so reading the entries after the last id seen misses nothing
//! and sees nothing twice.
//!
//! [`ChangeFeed::poll`] is one indexed range read (the actions that
//! matter, after an id, at most [`BATCH`]); the host calls it a few times
//! a second (`server::account_events`).

use rusqlite::params;

use super::store::{Store, StoreError};
use crate::util::sync::lock;

/// Entries read per poll at most; the rest wait for the next one.
pub(super) const BATCH: usize = 256;

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A login (`POST /auth/login`).
    Login,
    /// A logout (`POST /auth/logout`): one login session ended.
    Logout,
    /// The user was disabled: all of its login sessions ended.
    Disabled,
    /// The user was enabled again.
    Enabled,
    /// Roles were added or removed.
    RolesChanged,
    /// Login sessions ended otherwise: a password change, or a refresh
    /// token presented twice.
    SessionsEnded,
}

impl ChangeKind {
    /// The kind of audit action `action`; `None` for actions that change
    /// nobody's rights (a refused login, a refresh, a user added).
    fn of(action: &str) -> Option<ChangeKind> {
        Some(match action {
            "login" => ChangeKind::Login,
            "logout" => ChangeKind::Logout,
            "user_disable" => ChangeKind::Disabled,
            "user_enable" => ChangeKind::Enabled,
            "user_roles" => ChangeKind::RolesChanged,
            "user_passwd" | "refresh_reused" => ChangeKind::SessionsEnded,
            _ => return None,
        })
    }

    /// The event modules get for it (`Module::on_event`, and external
    /// modules' broadcast frames); `None` for the kinds that only end
    /// sessions.
    pub fn event_name(self) -> Option<&'static str> {
        match self {
            ChangeKind::Login => Some("user_login"),
            ChangeKind::Logout => Some("user_logout"),
            ChangeKind::Disabled => Some("user_disabled"),
            ChangeKind::RolesChanged => Some("user_roles_changed"),
            ChangeKind::Enabled | ChangeKind::SessionsEnded => None,
        }
    }

    /// Whether open sessions of the user must check their credential
    /// again (a login changes no existing session).
    pub fn needs_recheck(self) -> bool {
        !matches!(self, ChangeKind::Login | ChangeKind::Enabled)
    }
}

/// One change to one user, in the order the store made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The user's name in the store (without `account:`).
    pub user: String,
}

/// The audit actions [`ChangeKind::of`] knows, for the query.
const ACTIONS: &str =
    "'login','logout','user_disable','user_enable','user_roles','user_passwd','refresh_reused'";

/// Reads the changes after the last one it returned.
#[derive(Debug)]
pub struct ChangeFeed {
    after: i64,
}

impl ChangeFeed {
    /// A feed of the changes made from now on.
    pub fn from_now(store: &Store) -> Result<ChangeFeed, StoreError> {
        let conn = lock(&store.conn);
        let after = conn.query_row("SELECT coalesce(max(id), 0) FROM audit", [], |r| r.get(0))?;
        Ok(ChangeFeed { after })
    }

    /// The changes made since the last poll (at most [`BATCH`]; more wait
    /// for the next poll), oldest first.
    pub fn poll(&mut self, store: &Store) -> Result<Vec<Change>, StoreError> {
        let conn = lock(&store.conn);
        // Read first: entries written while the range below is read are
        // left for the next poll, never skipped.
        let newest: i64 =
            conn.query_row("SELECT coalesce(max(id), 0) FROM audit", [], |r| r.get(0))?;
        if newest <= self.after {
            return Ok(Vec::new());
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, action, subject FROM audit
             WHERE id > ?1 AND id <= ?2 AND action IN ({ACTIONS}) AND subject IS NOT NULL
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![self.after, newest, BATCH as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let rows: Vec<(i64, String, String)> = rows.collect::<Result<_, _>>()?;
        // A full batch continues after its last entry; otherwise every
        // entry up to `newest` was seen, refused logins included.
        self.after = match rows.last() {
            Some((id, ..)) if rows.len() == BATCH => *id,
            _ => newest,
        };
        Ok(rows
            .into_iter()
            .filter_map(|(_, action, user)| {
                ChangeKind::of(&action).map(|kind| Change { kind, user })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::admin;

    #[test]
    fn the_feed_sees_each_change_once_in_order_from_any_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let user = vec!["user".to_owned()];
        admin::add(&store, "alice", None, &user, None).unwrap();
        let mut feed = ChangeFeed::from_now(&store).unwrap();
        assert!(feed.poll(&store).unwrap().is_empty());
        // Another connection, as `modhost user` in another process.
        let cli = Store::open_in(dir.path()).unwrap();
        cli.audit("1.2.3.4", "login_failed", Some("alice"), None)
            .unwrap();
        cli.change_roles("cli", "alice", &[], &user).unwrap();
        cli.set_disabled("cli", "alice", true).unwrap();
        cli.set_disabled("cli", "alice", false).unwrap();
        let seen: Vec<(ChangeKind, String)> = feed
            .poll(&store)
            .unwrap()
            .into_iter()
            .map(|c| (c.kind, c.user))
            .collect();
        let alice = || "alice".to_owned();
        assert_eq!(
            seen,
            [
                (ChangeKind::RolesChanged, alice()),
                (ChangeKind::Disabled, alice()),
                (ChangeKind::Enabled, alice()),
            ]
        );
        assert!(feed.poll(&store).unwrap().is_empty());
    }

    #[test]
    fn a_long_backlog_comes_in_batches_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let mut feed = ChangeFeed::from_now(&store).unwrap();
        for i in 0..BATCH + 10 {
            store
                .audit("host", "logout", Some(&format!("u{i}")), None)
                .unwrap();
        }
        assert_eq!(feed.poll(&store).unwrap().len(), BATCH);
        let rest = feed.poll(&store).unwrap();
        assert_eq!(rest.len(), 10);
        assert_eq!(rest[9].user, format!("u{}", BATCH + 9));
    }

    #[test]
    fn only_rights_changes_become_module_events() {
        assert_eq!(ChangeKind::of("login_failed"), None);
        assert_eq!(ChangeKind::of("refresh"), None);
        assert_eq!(
            ChangeKind::of("user_passwd").map(ChangeKind::event_name),
            Some(None)
        );
        assert_eq!(
            ChangeKind::of("logout").and_then(ChangeKind::event_name),
            Some("user_logout")
        );
        assert!(!ChangeKind::Login.needs_recheck());
        assert!(ChangeKind::SessionsEnded.needs_recheck());
    }
}
