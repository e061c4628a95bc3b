//! The account store: one SQLite file, `state_dir/modhost.db`, in WAL mode.
//!
//! Every write is one transaction, so a `kill -9` (or a power cut, with
//! `synchronous = FULL`) leaves either all of it or none of it. The schema
//! is versioned by `PRAGMA user_version` (version 2 adds the job
//! launcher's `jobs` table, read by `jobs::store`): [`MIGRATIONS`] holds each
//! version's SQL, applied in order and in a transaction each, so a store
//! made by an older host is brought forward when it is opened and a newer
//! one is refused rather than misread.
//!
//! The host and the `modhost user` CLI may have the file open at once: WAL
//! lets one write while the other reads, and `busy_timeout` makes a writer
//! wait for the other rather than fail.

use std::{
    fs,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime},
};

use rusqlite::{Connection, TransactionBehavior};

use crate::util::sync::lock;

/// The store's file name in `[modules] state_dir`.
pub const DB_FILE: &str = "modhost.db";

/// How long a write waits for another process's write to finish.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one entry per version: entry `i` takes `user_version` from
/// `i` to `i + 1`. Append only; never edit an entry a release shipped.
const MIGRATIONS: &[&str] = &[
    // 1: users, their login sessions and refresh tokens, the audit log.
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        email TEXT,
        -- argon2id PHC string; NULL: no password (cannot log in with one)
        password_hash TEXT,
        -- JSON array of role names
        roles TEXT NOT NULL DEFAULT '[]',
        -- Unix seconds when disabled; NULL while enabled
        disabled_at INTEGER,
        created_at INTEGER NOT NULL,
        -- Unix seconds of the last change to roles, password or disabled
        changed_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        -- random, named by access tokens' sid claim
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        -- Unix seconds of logout, refresh token reuse, disable or password change
        ended_at INTEGER
    );
    CREATE TABLE refresh_tokens (
        -- SHA-256 of the token: the token itself is never stored
        hash BLOB PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL,
        -- set when it was exchanged for a new one
        used_at INTEGER
    );
    CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        -- who did it: cli, host, the user's name, or an address
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        -- the user it was done to, if any
        subject TEXT,
        -- what changed (role names, an address); never a password or token
        detail TEXT
    );",
    // 2: jobs (issue 17): the job launcher's registry, one row per job.
    "CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        app TEXT NOT NULL,
        port INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        host TEXT NOT NULL,
        job_dir TEXT NOT NULL,
        config TEXT,
        hash_algorithm TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        -- starting, running, exited, failed, stopped, lost
        status TEXT NOT NULL,
        -- the process (and group) id while it may run
        pid INTEGER,
        -- /proc/<pid>/stat field 22, to tell the process from a later one with its pid
        start_ticks INTEGER,
        exit_code INTEGER,
        restarts INTEGER NOT NULL DEFAULT 0,
        message TEXT,
        -- JSON: the argv, directory and environment it was started with
        plan TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX jobs_status ON jobs(status);",
];

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder or file could not be made or opened.
    #[error(
        "cannot open the account store {}: {source}; check that [modules] state_dir is writable by the host",
        path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A newer host wrote this store.
    #[error(
        "the account store {} has schema version {found}, newer than this host's {known}; run the newer modhost, or restore a backup made by this one",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest this build knows.
        known: usize,
    },
    /// SQLite refused an operation.
    #[error("account store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// No user has this name.
    #[error("no user is named {0:?}; `modhost user list` shows who there is")]
    NoSuchUser(String),
    /// A user with this name exists already.
    #[error("a user named {0:?} exists already; pick another name, or change that user")]
    UserExists(String),
}

/// The open store. Its connection is behind a mutex: every operation is a
/// short transaction, and callers on the async runtime run the slow part
/// (password hashing) before they take it.
pub struct Store {
    path: PathBuf,
    pub(crate) conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (making it if missing) `state_dir/modhost.db` and bring its
    /// schema up to date.
    pub fn open_in(state_dir: &Path) -> Result<Store, StoreError> {
        Store::open(&state_dir.join(DB_FILE))
    }

    /// Open (making it if missing) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(open_err)?;
        }
        // Password hashes and the audit log are nobody else's business.
        // The file is made 0600 before SQLite opens it: SQLite gives its
        // -wal and -shm files the database file's mode.
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(open_err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(open_err)?;
        let conn = Connection::open(path).map_err(|e| open_err(std::io::Error::other(e)))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = Store {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version now in the file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = lock(&self.conn);
        Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
    }

    /// `PRAGMA integrity_check`'s answer: `"ok"` for a sound file.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let conn = lock(&self.conn);
        Ok(conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = lock(&self.conn);
        // IMMEDIATE: two processes opening a new store at once do not both
        // try to create the tables.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known: MIGRATIONS.len(),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tracing::info!(path = %self.path.display(), version = i + 1, "account store schema migrated");
        }
        tx.commit()?;
        Ok(())
    }
}

/// Now, in Unix seconds.
pub(super) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
