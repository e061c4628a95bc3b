//! Who an authenticated client is: the result of every auth mode.
//!
//! # User names are namespaced by their source
//!
//! Each auth mode names users on its own: a JWT issuer's `sub` "alice" and
//! the static token configured for "alice" are not the same person. Every
//! per-user thing keys on [`Principal::user`] — what modules see as
//! `caller.user` (notes, their per-user limits), pushes to a user's
//! sessions, resume — so the name carries its source:
//!
//! | source | `user` | example |
//! |---|---|---|
//! | `[[auth.tokens]]` | as configured | `alice` |
//! | `[auth.jwt]` | `jwt:` + the user claim | `jwt:alice` |
//! | `[auth.oidc]` | `oidc:` + the token's `sub` | `oidc:f81d4fae-…` |
//! | `[auth.bootstrap]` | `bootstrap:` + the reply's user id | `bootstrap:42` |
//! | accounts (`/auth/login`) | `account:` + the stored name | `account:alice` |
//! | bootstrap, no user id | `anonymous-` + 16 random hex digits, new per connection | `anonymous-3f…` |
//!
//! Static names stay as operators wrote them, so existing config and
//! module state keep working; a static name may not start with a prefix
//! of another source ([`RESERVED_PREFIXES`]), so none can be claimed by a
//! config entry.

use std::time::SystemTime;

/// The role that makes a principal an administrator (e.g. may ask `status`).
pub const ADMIN_ROLE: &str = "admin";

/// What JWT users' names start with.
pub const JWT_PREFIX: &str = "jwt:";

/// What `[auth.oidc]` users' names start with. The rest is the token's
/// `sub`, the one claim OpenID Connect promises is unique within the issuer
/// and never reassigned; `preferred_username` may be changed by the user
/// or an administrator and then taken by someone else, who would inherit
/// the old name's per-user state (notes, resumable sessions).
pub const OIDC_PREFIX: &str = "oidc:";

/// What bootstrap users' names start with (anonymous ones excepted).
pub const BOOTSTRAP_PREFIX: &str = "bootstrap:";

/// What account users' names start with.
pub const ACCOUNT_PREFIX: &str = "account:";

/// Prefixes a `[[auth.tokens]]` user may not start with: they belong to
/// other sources.
pub const RESERVED_PREFIXES: [&str; 4] =
    [JWT_PREFIX, BOOTSTRAP_PREFIX, ACCOUNT_PREFIX, OIDC_PREFIX];

/// Which auth mode vouched for a principal, and what a session needs to
/// know to notice when that stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `[[auth.tokens]]` entry, known by the SHA-256 of its token: a
    /// session checks it again when the config changes (the entry may have
    /// been removed, or its roles changed), and only a client with the
    /// same token may resume it.
    Static {
        /// SHA-256 of the token.
        token_digest: [u8; 32],
    },
    /// A JWT, accepted until `expires` (its `exp` plus the configured
    /// leeway); the session ends then.
    Jwt {
        /// When the session must end.
        expires: SystemTime,
    },
    /// A token from the `[auth.oidc]` issuer, accepted until `expires`
    /// (its `exp` plus the configured leeway), like [`Source::Jwt`].
    Oidc {
        /// When the session must end.
        expires: SystemTime,
    },
    /// A user the bootstrap URL named.
    Bootstrap,
    /// An access token this host signed for a user of its store
    /// (`accounts`): accepted until `expires`, the session ends then.
    /// `session` is the login session (`sid`) a logout ends.
    Account {
        /// When the session must end (the token's `exp`).
        expires: SystemTime,
        /// The login session id.
        session: String,
    },
    /// A client the bootstrap URL named nobody for: its name is new for
    /// each connection, so it has nothing to resume and is never parked.
    Anonymous,
}

/// An authenticated client.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user id, namespaced by its source (see the module docs): a
    /// static token's `user`, `jwt:<user claim>`, `oidc:<sub>`,
    /// `bootstrap:<user id>`, or
    /// `anonymous-<16 random hex digits>`, new for each connection, when
    /// the bootstrap reply names nobody. The auth modes give their own
    /// name here; the [`Authenticator`](super::Authenticator) adds the
    /// prefix ([`Principal::namespaced`]).
    pub user: String,
    /// Role names, e.g. `["user"]` or `["admin"]`.
    pub roles: Vec<String>,
    /// Room patterns this client may subscribe to; each is a JSON object
    /// (the auth modes refuse anything else). A websocket session empties
    /// it once it has greeted the client and keeps the parsed rooms
    /// instead (one copy less per idle connection).
    pub allowed_rooms: Vec<serde_json::Value>,
    /// Which mode vouched for it.
    pub source: Source,
}

impl Principal {
    /// Whether this principal has the [`ADMIN_ROLE`] role.
    pub fn is_admin(&self) -> bool {
        self.has_role(ADMIN_ROLE)
    }

    /// Whether this principal has role `role` (exact, case-sensitive).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// This principal with its user name prefixed by its source.
    pub fn namespaced(mut self) -> Self {
        let prefix = match self.source {
            Source::Jwt { .. } => JWT_PREFIX,
            Source::Oidc { .. } => OIDC_PREFIX,
            Source::Bootstrap => BOOTSTRAP_PREFIX,
            Source::Account { .. } => ACCOUNT_PREFIX,
            Source::Static { .. } | Source::Anonymous => return self,
        };
        self.user.insert_str(0, prefix);
        self
    }

    /// Whether a session may be resumed by a client authenticated as
    /// `other`: the same user, and for a static token the same token (so a
    /// removed token's sessions cannot be taken over with another).
    pub fn may_resume_as(&self, other: &Principal) -> bool {
        if self.user != other.user {
            return false;
        }
        match (&self.source, &other.source) {
            (Source::Static { token_digest: a }, Source::Static { token_digest: b }) => {
                crate::util::secret::ct_eq(a, b)
            }
            (Source::Jwt { .. }, Source::Jwt { .. })
            | (Source::Oidc { .. }, Source::Oidc { .. })
            | (Source::Bootstrap, Source::Bootstrap)
            | (Source::Account { .. }, Source::Account { .. }) => true,
            _ => false,
        }
    }

    /// When a session on this principal's credential must end: the token's
    /// `exp` plus leeway for a JWT or OIDC token, `None` for the others.
    pub fn expires(&self) -> Option<SystemTime> {
        match self.source {
            Source::Jwt { expires }
            | Source::Oidc { expires }
            | Source::Account { expires, .. } => Some(expires),
            Source::Static { .. } | Source::Bootstrap | Source::Anonymous => None,
        }
    }

    /// Whether sessions of this principal are parked for a resume when
    /// their client drops.
    pub fn resumable(&self) -> bool {
        !matches!(self.source, Source::Anonymous)
    }
}
