//! [`Accounts`]: login, refresh, logout and access-token checks, on top of
//! the store, the password hasher and the token keys.
//!
//! Hashing a password takes tens of milliseconds of CPU and 19 MiB, and a
//! store write waits for an fsync, so both run on the blocking pool, and at
//! most [`HASHING_AT_ONCE`] hashes run at a time: a flood of logins queues
//! rather than taking every core and a hash's memory per request.

use std::{
    net::IpAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::Semaphore;

use super::{
    Passwords, Store, StoreError, TokenKeys,
    passwords::PasswordError,
    ratelimit::FailureLimit,
    refresh::RefreshRefused,
    tokens::{AccessTokenError, KEY_FILE},
    users::name_problem,
};
use crate::{config::AccountsConfig, external::HostKeyError};

/// Failed logins per user name per [`FAILURE_WINDOW`] before its logins
/// are refused until the window ends.
pub const USER_FAILURE_LIMIT: u32 = 5;

/// Failed logins per client address per [`FAILURE_WINDOW`]. Behind a
/// reverse proxy every client has the proxy's address: this then limits
/// all of them together.
pub const IP_FAILURE_LIMIT: u32 = 20;

/// The window failed logins are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// Names and addresses whose failures are counted at once (each about 100
/// bytes: at most a few MiB).
const FAILURE_KEYS: usize = 20_000;

/// The failure counter of every name no user can have.
const INVALID_NAME_KEY: &str = "\0invalid-name";

/// Password hashes computed at once.
pub const HASHING_AT_ONCE: usize = 2;

/// Why the accounts could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key that signs access tokens.
    #[error("the key that signs access tokens: {0}")]
    Key(#[from] HostKeyError),
    /// The dummy hash.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Why a login, refresh or logout was refused. The client sees only the
/// kind ([`LoginError::Refused`] is the same answer for an unknown user, a
/// wrong password and a disabled user).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong name or password, disabled user, unusable refresh token.
    #[error("refused: {0}")]
    Refused(String),
    /// Too many failures for this name or address.
    #[error("too many failed logins for this {0}; wait a few minutes")]
    RateLimited(&'static str),
    /// The store failed, or the OS had no randomness.
    #[error("the account store is not usable now: {0}")]
    Unavailable(String),
}

/// A successful login or refresh: what `/auth/login` answers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoginTokens {
    /// The access token (a JWT for `/ws/`).
    pub access_token: String,
    /// The refresh token (for `/auth/refresh` and `/auth/logout`).
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Who an access token stands for, as the store has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUser {
    /// The user's name in the store (without any prefix).
    pub name: String,
    /// Its roles now.
    pub roles: Vec<String>,
    /// Its login session.
    pub session: String,
    /// When the token expires.
    pub expires: SystemTime,
}

/// The accounts service; see the module docs.
#[derive(Debug)]
pub struct Accounts {
    store: Arc<Store>,
    passwords: Arc<Passwords>,
    keys: TokenKeys,
    access_ttl: Duration,
    refresh_ttl: Duration,
    by_ip: FailureLimit,
    by_user: FailureLimit,
    hashing: Semaphore,
}

impl Accounts {
    /// Whether `[auth.accounts]` asks for accounts: `enabled`, or when it
    /// is unset, whether the store in `state_dir` holds a user (the file
    /// alone says nothing: the job launcher makes it for its registry).
    /// A store that cannot be read counts as holding users, so that
    /// [`Accounts::open`] stops the start with what is wrong rather than
    /// the host quietly refusing every account's login.
    pub fn wanted(config: &AccountsConfig, state_dir: &Path) -> bool {
        config
            .enabled
            .unwrap_or_else(|| match Store::has_users_in(state_dir) {
                Ok(has) => has,
                Err(e) => {
                    tracing::warn!("accounts: cannot tell whether the store holds users: {e}");
                    true
                }
            })
    }

    /// Open the store and the token key in `state_dir` (making them if
    /// missing).
    pub fn open(state_dir: &Path, config: &AccountsConfig) -> Result<Accounts, AccountsError> {
        let store = Store::open_in(state_dir)?;
        let key = crate::external::load_or_create_host_key(
            state_dir,
            KEY_FILE,
            "signs the access tokens of accounts",
        )?;
        if let Err(e) = store.prune() {
            tracing::warn!("account store: cannot delete expired refresh tokens: {e}");
        }
        Ok(Accounts {
            store: Arc::new(store),
            passwords: Arc::new(Passwords::new()?),
            keys: TokenKeys::new(key),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            by_ip: FailureLimit::new(IP_FAILURE_LIMIT, FAILURE_WINDOW, FAILURE_KEYS),
            by_user: FailureLimit::new(USER_FAILURE_LIMIT, FAILURE_WINDOW, FAILURE_KEYS),
            hashing: Semaphore::new(HASHING_AT_ONCE),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The access token keys.
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Check `name` and `password`, from `client`; on success start a login
    /// session and return its tokens.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<LoginTokens, LoginError> {
        let ip = client.to_string();
        let now = Instant::now();
        if !self.by_ip.allowed(&ip, now) {
            return Err(LoginError::RateLimited("address"));
        }
        // Names no user can have share one counter: the table's keys stay
        // short, and nobody can grow it with long made-up names.
        let valid = name_problem(name).is_none();
        let user_key = if valid { name } else { INVALID_NAME_KEY };
        if !self.by_user.allowed(user_key, now) {
            return Err(LoginError::RateLimited("user"));
        }
        let user = if valid {
            let store = self.store.clone();
            let name = name.to_owned();
            blocking(move || store.user_with_hash(&name)).await?
        } else {
            None
        };
        let (user, hash) = match user {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        let matches = {
            let _permit = self.hashing.acquire().await.map_err(|_| closed())?;
            let passwords = self.passwords.clone();
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || passwords.verify(&password, hash.as_deref()))
                .await
                .map_err(|e| LoginError::Unavailable(e.to_string()))?
        };
        let user = match user {
            Some(user) if matches && user.enabled() => user,
            found => {
                self.by_ip.failed(&ip, now);
                self.by_user.failed(user_key, now);
                let reason = match &found {
                    None => "no such user",
                    Some(u) if !u.enabled() => "user disabled",
                    Some(_) => "wrong password",
                };
                tracing::info!(client = %ip, "login refused: {reason}");
                if let Some(user) = found {
                    let store = self.store.clone();
                    let name = user.name;
                    let detail = reason.to_owned();
                    blocking(move || store.audit(&ip, "login_failed", Some(&name), Some(&detail)))
                        .await?;
                }
                return Err(LoginError::Refused(reason.to_owned()));
            }
        };
        self.by_user.clear(user_key);
        let session = super::random_id().map_err(unavailable)?;
        let tokens = self.tokens_for(&user.name, &session)?;
        let store = self.store.clone();
        let refresh = tokens.refresh_token.clone();
        let ttl = self.refresh_ttl.as_secs() as i64;
        let name = user.name.clone();
        blocking(move || store.start_session(&ip, &user, &session, &refresh, ttl)).await?;
        tracing::info!(user = %name, client = %client, "login");
        Ok(tokens)
    }

    /// Exchange refresh token `token` for new tokens.
    pub async fn refresh(&self, token: &str, client: IpAddr) -> Result<LoginTokens, LoginError> {
        let next = random_token()?;
        let store = self.store.clone();
        let (old, new) = (token.to_owned(), next.clone());
        let ttl = self.refresh_ttl.as_secs() as i64;
        let actor = client.to_string();
        match blocking(move || store.rotate_refresh(&actor, &old, &new, ttl)).await? {
            Ok(of) => {
                let access = self
                    .keys
                    .issue(&of.user.name, &of.session, self.access_ttl)
                    .map_err(unavailable)?;
                Ok(LoginTokens {
                    access_token: access,
                    refresh_token: next,
                    expires_in: self.access_ttl.as_secs(),
                })
            }
            Err(refused) => {
                if refused == RefreshRefused::Reused {
                    tracing::warn!(client = %client, "a used refresh token was presented again: its session is ended");
                }
                Err(LoginError::Refused(refused.to_string()))
            }
        }
    }

    /// End the login session of refresh token `token`.
    pub async fn logout(&self, token: &str, client: IpAddr) -> Result<String, LoginError> {
        let store = self.store.clone();
        let token = token.to_owned();
        let actor = client.to_string();
        match blocking(move || store.end_session_of(&actor, &token)).await? {
            Some(name) => {
                tracing::info!(user = %name, client = %client, "logout");
                Ok(name)
            }
            None => Err(LoginError::Refused(
                "unknown refresh token, or its session had ended".into(),
            )),
        }
    }

    /// Whether `token` claims to be one of this host's access tokens.
    pub fn is_ours(&self, token: &str) -> bool {
        self.keys.is_ours(token)
    }

    /// Who access token `token` stands for now: its signature and expiry,
    /// then the store: the user exists and is enabled, the session is open.
    /// Reads the store on the caller's thread (two indexed reads).
    pub fn check_access(&self, token: &str) -> Result<AccountUser, AccessTokenError> {
        let claims = self.keys.verify(token)?;
        let refused = |why: &str| AccessTokenError::Invalid(why.to_owned());
        let user = self
            .store
            .user(&claims.sub)
            .map_err(|e| refused(&e.to_string()))?
            .ok_or_else(|| refused("its user no longer exists"))?;
        if !user.enabled() {
            return Err(refused("its user is disabled"));
        }
        if !self
            .store
            .session_open(&claims.sid)
            .map_err(|e| refused(&e.to_string()))?
        {
            return Err(refused("its session was logged out or ended"));
        }
        Ok(AccountUser {
            name: user.name,
            roles: user.roles,
            session: claims.sid,
            expires: SystemTime::UNIX_EPOCH + Duration::from_secs(claims.exp),
        })
    }

    fn tokens_for(&self, name: &str, session: &str) -> Result<LoginTokens, LoginError> {
        Ok(LoginTokens {
            access_token: self
                .keys
                .issue(name, session, self.access_ttl)
                .map_err(unavailable)?,
            refresh_token: random_token()?,
            expires_in: self.access_ttl.as_secs(),
        })
    }
}

/// 32 random bytes, base64url: a refresh token.
fn random_token() -> Result<String, LoginError> {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(unavailable)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn unavailable(e: impl std::fmt::Display) -> LoginError {
    LoginError::Unavailable(e.to_string())
}

fn closed() -> LoginError {
    LoginError::Unavailable("the host is shutting down".into())
}

/// Run a store operation on the blocking pool.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, LoginError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(unavailable)?
        .map_err(unavailable)
}
