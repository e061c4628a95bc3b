//! [`Authenticator`]: the configured modes, tried in order.

use std::{fmt, sync::Arc};

use super::Source;
use super::{
    AuthError, AuthSetupError, Credentials, Principal,
    bootstrap::Bootstrap,
    jwt::{self, JwtVerifier},
    oidc::{self, Oidc},
    tokens::StaticTokens,
};
use crate::{
    accounts::Accounts,
    config::{AuthConfig, RoleRooms},
};

/// Decides who a connecting client is, from `[auth]`.
///
/// Built once per configuration (reading the JWKS file and building the
/// bootstrap HTTP client), then shared: `authenticate` takes `&self`, so
/// put it in an `Arc` and call it from every connection at once.
///
/// # Order
/// 1. Static tokens: a token equal to a `[[auth.tokens]]` entry.
/// 2. Accounts: a JWT whose header names this host's accounts key (when
///    the host keeps accounts, [`Authenticator::with_accounts`]). It
///    decides, as `[auth.jwt]` does.
/// 3. JWT: a token shaped like a JWT (three dot-separated parts), when
///    `[auth.jwt]` or `[auth.oidc]` is configured. It decides: an invalid JWT
///    is refused, not passed on to the bootstrap URL. With both configured,
///    a token whose (unverified) `iss` is the OIDC issuer goes to
///    `[auth.oidc]`, any other to `[auth.jwt]`; each then checks it fully.
/// 4. Bootstrap: when `[auth.bootstrap]` is configured, every client the
///    first two did not decide on, *with or without a token*: the backend may
///    know the client from its session cookie alone.
///
/// Without bootstrap, a client no mode recognised is refused with
/// [`AuthError::NoCredentials`] or [`AuthError::UnknownToken`]; with no mode
/// configured at all, that is every client.
pub struct Authenticator {
    tokens: StaticTokens,
    jwt: Option<JwtVerifier>,
    oidc: Option<Arc<Oidc>>,
    bootstrap: Option<Bootstrap>,
    accounts: Option<Arc<Accounts>>,
    roles: Vec<RoleRooms>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("static_tokens", &self.tokens.len())
            .field("jwt", &self.jwt)
            .field("oidc", &self.oidc)
            .field("bootstrap", &self.bootstrap)
            .field("accounts", &self.accounts.is_some())
            .field("roles", &self.roles.len())
            .finish()
    }
}

impl Authenticator {
    /// Build the modes `config` asks for. Fails on an unreadable JWKS file,
    /// one without a usable key, an empty secret or token, or a bootstrap
    /// URL or OIDC issuer this build cannot call. Never waits for the OIDC
    /// issuer: its keys are fetched in the background (inside a Tokio
    /// runtime; outside one, by the first token that needs them).
    pub fn new(config: &AuthConfig) -> Result<Authenticator, AuthSetupError> {
        Authenticator::renewed(config, None)
    }

    /// [`Authenticator::new`] for a reloaded config: when `[auth.oidc]`
    /// did not change from `previous`'s, its issuer client is kept with
    /// the keys it has and its refresh schedule, instead of fetching them
    /// again on every edit of config.toml.
    pub fn renewed(
        config: &AuthConfig,
        previous: Option<&Authenticator>,
    ) -> Result<Authenticator, AuthSetupError> {
        let tokens = StaticTokens::new(&config.tokens)?;
        let jwt = config.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        // Without a rooms claim, an OIDC user's rooms come from its roles
        // through `[[auth.roles]]`, as an account's do.
        let table = config.roles.clone();
        let rooms_for_roles: oidc::RoomsForRoles = Arc::new(move |roles: &[String], user: &str| {
            super::roles::rooms_for(&table, user, roles)
        });
        let kept = previous
            .and_then(|p| p.oidc.as_ref())
            .filter(|o| config.oidc.as_ref() == Some(o.config()));
        let (oidc, kept_rooms) = match (kept, &config.oidc) {
            (Some(kept), _) => (Some(kept.clone()), Some(rooms_for_roles)),
            (None, Some(cfg)) => (Some(Arc::new(Oidc::new(cfg, rooms_for_roles)?)), None),
            (None, None) => (None, None),
        };
        let bootstrap = config.bootstrap.as_ref().map(Bootstrap::new).transpose()?;
        // Only once nothing can fail: the previous authenticator shares it.
        if let (Some(oidc), Some(rooms)) = (&oidc, kept_rooms) {
            oidc.set_rooms_for_roles(rooms);
        }
        Ok(Authenticator {
            tokens,
            jwt,
            oidc,
            bootstrap,
            accounts: None,
            roles: config.roles.clone(),
        })
    }

    /// This authenticator, also accepting the access tokens of `accounts`.
    /// The host builds every authenticator through here, so this is where
    /// it says when no mode at all is left.
    pub fn with_accounts(mut self, accounts: Option<Arc<Accounts>>) -> Self {
        self.accounts = accounts;
        if !self.any_mode() {
            tracing::warn!(
                "[auth] configures no mode and the host keeps no accounts: every websocket client will be refused"
            );
        }
        self
    }

    /// Whether at least one mode is configured.
    pub fn any_mode(&self) -> bool {
        self.tokens.len() > 0
            || self.jwt.is_some()
            || self.oidc.is_some()
            || self.bootstrap.is_some()
            || self.accounts.is_some()
    }

    /// Decide who `creds` belongs to.
    ///
    /// The error says why (for the server log); the client should only
    /// learn that it was refused.
    /// The user name is namespaced by the mode that vouched for it (see
    /// [`Principal`]'s module docs).
    pub async fn authenticate(&self, creds: &Credentials) -> Result<Principal, AuthError> {
        self.authenticate_in_mode(creds)
            .await
            .map(Principal::namespaced)
    }

    /// What the config says now of the static token with SHA-256 `digest`:
    /// its principal, or `None` once it was removed.
    pub fn static_principal(&self, digest: &[u8; 32]) -> Option<Principal> {
        self.tokens.by_digest(digest).cloned()
    }

    /// The allowed rooms of the static token with SHA-256 `digest`,
    /// parsed once for all its sessions; `None` if it is gone or one of
    /// its rooms does not parse.
    pub fn static_rooms(&self, digest: &[u8; 32]) -> Option<std::sync::Arc<[crate::rooms::Room]>> {
        self.tokens.rooms(digest)
    }

    /// The rooms `[[auth.roles]]` gives `user` (the full, prefixed name)
    /// with `roles`: what an account's session is allowed after its roles
    /// changed.
    pub fn rooms_for_roles(&self, user: &str, roles: &[String]) -> Vec<serde_json::Value> {
        super::roles::rooms_for(&self.roles, user, roles)
    }

    async fn authenticate_in_mode(&self, creds: &Credentials) -> Result<Principal, AuthError> {
        if let Some(token) = creds.token.as_deref() {
            if let Some(principal) = self.tokens.lookup(token) {
                return Ok(principal.clone());
            }
            if let Some(accounts) = &self.accounts
                && jwt::looks_like_jwt(token)
                && accounts.is_ours(token)
            {
                return self.account_principal(accounts, token);
            }
            if jwt::looks_like_jwt(token) {
                if let Some(oidc) = &self.oidc
                    && (self.jwt.is_none() || oidc.claims_issuer(token))
                {
                    return oidc.verify(token).await;
                }
                if let Some(jwt) = &self.jwt {
                    return jwt.verify(token).map_err(AuthError::JwtInvalid);
                }
            }
        }
        if let Some(bootstrap) = &self.bootstrap {
            return bootstrap.authenticate(creds).await;
        }
        Err(match creds.token {
            Some(_) => AuthError::UnknownToken,
            None => AuthError::NoCredentials,
        })
    }

    /// The principal of one of this host's access tokens: roles from the
    /// store now, rooms from `[[auth.roles]]`.
    fn account_principal(&self, accounts: &Accounts, token: &str) -> Result<Principal, AuthError> {
        let account = accounts.check_access(token)?;
        let user = format!("{}{}", super::ACCOUNT_PREFIX, account.name);
        let allowed_rooms = super::roles::rooms_for(&self.roles, &user, &account.roles);
        // `namespaced` adds the prefix to `user` afterwards; `{user}` in
        // rooms must already be the full name.
        Ok(Principal {
            user: account.name,
            roles: account.roles,
            allowed_rooms,
            source: Source::Account {
                expires: account.expires,
                session: account.session,
            },
        })
    }
}
