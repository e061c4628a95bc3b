//! Why a client was refused, and why an [`Authenticator`](super::Authenticator)
//! could not be built.
//!
//! The gateway branches on [`AuthError`] only to pick a log level
//! ([`AuthError::is_upstream_failure`]); the client always gets the same
//! `{"is_authorized": false}`. The `Display` text names the reason (expired,
//! wrong issuer, unknown kid…) and is meant for the server log only: telling
//! a client *why* its token failed helps an attacker more than the client.

use std::path::PathBuf;

/// Why [`Authenticator::authenticate`](super::Authenticator::authenticate)
/// refused a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token, and no mode that works without one (bootstrap) is configured.
    #[error("no credentials presented")]
    NoCredentials,
    /// A token no configured mode recognises (not a static token, not a JWT
    /// or JWT not configured, and no bootstrap URL).
    #[error("unknown token")]
    UnknownToken,
    /// The token looks like a JWT and JWT auth is configured, but it failed.
    #[error("invalid JWT: {0}")]
    JwtInvalid(#[from] JwtError),
    /// The token claims the `[auth.oidc]` issuer but failed its checks.
    #[error("invalid OIDC token: {0}")]
    OidcInvalid(JwtError),
    /// The token claims the `[auth.oidc]` issuer, but none of its keys are
    /// known yet: discovery or the JWKS fetch has not succeeded since the
    /// host started (the reason says what failed last).
    #[error("OIDC issuer's keys unavailable: {0}")]
    OidcUnavailable(String),
    /// The bootstrap URL answered, with a status other than 200.
    #[error("bootstrap refused the client (HTTP {status})")]
    BootstrapRefused {
        /// The HTTP status it answered.
        status: u16,
    },
    /// The bootstrap URL could not be reached (connection refused, reset…).
    #[error("bootstrap URL unreachable: {0}")]
    BootstrapUnreachable(String),
    /// The bootstrap URL did not answer within `[auth.bootstrap] timeout_ms`.
    #[error("bootstrap URL timed out")]
    BootstrapTimeout,
    /// The bootstrap URL answered 200 with a body we cannot use: not JSON,
    /// too large, `allowed_rooms` not an array of objects, or a user id or
    /// roles of the wrong type at their configured paths.
    #[error("bootstrap reply unusable: {0}")]
    BootstrapBadReply(String),
    /// The system's random source failed, so an anonymous client could not
    /// be given a name of its own; sharing a guessable one would let its
    /// state leak to others, so it is refused instead.
    #[error("no randomness for an anonymous identity: {0}")]
    NoRandomness(String),
    /// The token names this host's accounts key but is not a usable access
    /// token now: bad signature, expired, its user disabled or gone, its
    /// session logged out.
    #[error("account access token refused: {0}")]
    AccountToken(#[from] crate::accounts::AccessTokenError),
}

impl AuthError {
    /// Whether the refusal is our side's fault (the bootstrap backend is
    /// down, slow or broken) rather than the client's. Upstream failures
    /// deserve a `warn!`; bad client credentials only a `debug!` (STYLE §2.4:
    /// bad user input is not logged at error level).
    pub fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            AuthError::BootstrapUnreachable(_)
                | AuthError::BootstrapTimeout
                | AuthError::BootstrapBadReply(_)
                | AuthError::NoRandomness(_)
                | AuthError::OidcUnavailable(_)
        )
    }
}

/// Why a JWT was refused. Kept for the server log, never sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three base64url parts with a JSON header and claims.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header says `alg: none`: never accepted.
    #[error("alg \"none\" is never accepted")]
    AlgNone,
    /// The header's `alg` is not the one the selected key is for (this is
    /// where algorithm-confusion attempts end up).
    #[error("alg {alg} not accepted for this key")]
    AlgorithmNotAllowed {
        /// The `alg` the token claimed.
        alg: String,
    },
    /// No configured key has this `kid`, or (no `kid`) none is for this `alg`.
    #[error("no key for kid {kid:?} and alg {alg}")]
    UnknownKid {
        /// The token's `kid`, if it had one.
        kid: Option<String>,
        /// The token's `alg`.
        alg: String,
    },
    /// The token has no `kid` and several keys could verify it.
    #[error("token has no kid and {count} keys match alg {alg}")]
    AmbiguousKey {
        /// The token's `alg`.
        alg: String,
        /// How many keys matched.
        count: usize,
    },
    /// The signature does not verify with the selected key.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the configured audiences (`aud` is not checked
    /// when `[auth.jwt] audience` is empty).
    #[error("wrong audience")]
    WrongAudience,
    /// A registered claim we require (`exp`; `iss`/`aud` when configured) is
    /// missing or has the wrong type.
    #[error("missing or malformed claim {0:?}")]
    MissingClaim(String),
    /// The configured user claim is missing, empty or not a string.
    #[error("missing user claim {0:?}")]
    MissingUserClaim(String),
    /// The rooms claim is present but not an array of objects.
    #[error("rooms claim {0:?} is not an array of objects")]
    BadRoomsClaim(String),
}

/// Why an [`Authenticator`](super::Authenticator) could not be built from
/// `[auth]`. Each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthSetupError {
    /// `[[auth.tokens]]` entry with an empty `token`.
    #[error("[[auth.tokens]] entry for user {user:?} has an empty token")]
    EmptyStaticToken {
        /// The entry's `user`.
        user: String,
    },
    /// `[[auth.tokens]]` entry whose `user` starts with another source's
    /// prefix (`jwt:`, `bootstrap:`): it could take over that source's
    /// user's state.
    #[error(
        "[[auth.tokens]] entry for user {user:?}: a static user may not start with {prefix:?}, \
         which names users of another auth mode; rename it"
    )]
    ReservedUserName {
        /// The entry's `user`.
        user: String,
        /// The prefix it starts with.
        prefix: &'static str,
    },
    /// `[auth.jwt]` with neither `secret` nor `jwks_file`.
    #[error("[auth.jwt] needs `secret` (HS256) or `jwks_file` (RS256/ES256/EdDSA)")]
    JwtNoKey,
    /// `[auth.jwt] secret = ""`.
    #[error("[auth.jwt] secret is empty")]
    EmptyJwtSecret,
    /// The JWKS file could not be read.
    #[error("[auth.jwt] jwks_file {path}: {source}")]
    JwksRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JWKS file is not `{"keys": [...]}` JSON, or is too large.
    #[error("[auth.jwt] jwks_file {path}: {reason}")]
    JwksParse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The JWKS file parsed but none of its keys can verify signatures.
    #[error("[auth.jwt] jwks_file {path} has no usable signing key ({skipped})")]
    JwksNoUsableKey {
        /// The file.
        path: PathBuf,
        /// Why each key was skipped, `; `-separated.
        skipped: String,
    },
    /// `[auth.bootstrap] url` cannot be used.
    #[error("[auth.bootstrap] url {url:?}: {reason}")]
    BootstrapUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `[auth.oidc] issuer` cannot be used by this build.
    #[error("[auth.oidc] issuer {issuer:?}: {reason}")]
    OidcIssuer {
        /// The configured issuer.
        issuer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `[auth.oidc] ca_file` could not be read or holds no certificate.
    #[error("[auth.oidc] ca_file: {0}")]
    OidcCaFile(String),
    /// The HTTP client for the OIDC issuer could not be built.
    #[error("[auth.oidc]: cannot build HTTP client: {0}")]
    OidcClient(String),
    /// The HTTP client for the bootstrap URL could not be built.
    #[error("[auth.bootstrap]: cannot build HTTP client: {0}")]
    BootstrapClient(String),
}
