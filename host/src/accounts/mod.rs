//! Accounts: users the host keeps itself, in `state_dir/modhost.db`, who
//! log in with a password on `POST /auth/login` and get short-lived access
//! tokens signed by the host, accepted on `/ws/` like any token.
//!
//! [`Accounts`] is what the HTTP routes and the authenticator share: the
//! [`Store`], the password hasher, the token keys and the failed-login
//! limits. It is opened at start when `[auth.accounts] enabled = true`, or
//! when unset and the store file exists (`modhost user add` made it).
//!
//! # Tokens
//! - access: an EdDSA JWT (`tokens`), `[auth.accounts] access_token_secs`
//!   (default 600); roles and the user's state are read from the store each
//!   time it is presented, so it stops working as soon as its user is
//!   disabled or its session is logged out, and the sockets opened with it
//!   are closed or downgraded then too (`changes`, `gateway::revoke`)
//! - refresh: 32 random bytes, stored as SHA-256 only, valid for
//!   `refresh_token_secs` (default 14 days), exchanged once (rotation);
//!   logout ends its session, and disabling a user or changing its
//!   password ends all of that user's sessions (`refresh`)
//!
//! # Layout
//! - `store`: [`Store`], the SQLite file, WAL, versioned migrations
//! - `users`: [`User`]s: add, list, disable, roles, password
//! - `refresh`: login sessions and refresh tokens, rotation and reuse
//! - `audit`: [`AuditEntry`]s, written with the change they describe
//! - `changes`: [`ChangeFeed`], the audit log read as a feed of changes
//!   (this host's and other processes'), for revocation and module events
//! - `passwords`: argon2id hashes, and a dummy one for unknown users
//! - `tokens`: [`TokenKeys`], access tokens signed with the host's key
//! - `ratelimit`: [`FailureLimit`], failed logins per address and per name
//! - `service`: [`Accounts`], login, refresh, logout and token checks
//! - `admin`: what `modhost user …` and `run --create-admin` do

pub mod admin;
mod audit;
mod changes;
mod passwords;
mod ratelimit;
mod refresh;
mod service;
mod store;
mod tokens;
mod users;

#[cfg(test)]
mod tests;

pub use audit::AuditEntry;
pub use changes::{Change, ChangeFeed, ChangeKind};
pub use passwords::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordError, Passwords, hash};
pub use ratelimit::FailureLimit;
pub use refresh::{RefreshRefused, SessionOf};
pub use service::{
    AccountUser, Accounts, AccountsError, HASHING_AT_ONCE, IP_FAILURE_LIMIT, LoginError,
    LoginTokens, USER_FAILURE_LIMIT,
};
pub use store::{DB_FILE, Store, StoreError};
pub use tokens::{AccessClaims, AccessTokenError, ISSUER, KEY_FILE, TokenKeys};
pub use users::{MAX_NAME_CHARS, User, name_problem};

/// 16 random bytes as hex: session ids and token ids.
pub(crate) fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}
