//! `[auth.oidc]`: tokens from an OpenID Connect issuer (Keycloak, Dex,
//! Authentik…), verified with keys the host fetches from it.
//!
//! # Keys
//! The issuer's discovery document (`<issuer>/.well-known/openid-configuration`,
//! whose `issuer` must equal the configured one) names its `jwks_uri`; the
//! JWKS there is read with the same rules as `[auth.jwt] jwks_file` (see
//! `jwt.rs`: each key carries the one algorithm it is for, RS*/PS*/ES256/
//! ES384/EdDSA; symmetric keys are skipped). The keys are kept in memory and
//! replaced only by a later fetch that succeeds, so an issuer that goes
//! down leaves the host verifying with the keys it had.
//!
//! Fetches happen:
//! - in a background task, at start and then every `refresh_secs`; after a
//!   failure it retries after 1 s, doubling up to a minute (or
//!   `refresh_secs` if shorter), and logs each failure;
//! - when a token names a `kid` the host does not have (the issuer may have
//!   rotated), or arrives before any key is known; at most one such fetch
//!   per `unknown_kid_refresh_secs`, so a flood of made-up `kid`s costs the
//!   issuer one request per period, not one per token.
//!
//! One fetch runs at a time; a token that needs one while another is under
//! way waits for that one's result.
//!
//! # Tokens
//! `alg: none` and HMAC algorithms are refused before any key is looked at:
//! the issuer's keys are public, and an HS256 "signature" made with one as
//! the secret proves nothing. Then the signature, `exp` (required), `nbf`,
//! `iss` (the configured issuer) and `aud` (one of `audience`), with
//! `leeway_secs`. The user is `oidc:` + `sub` (`principal.rs` says why
//! `sub`), the roles are at `roles_claim`, the rooms at `rooms_claim` when it
//! is set, else [`RoomsForRoles`] decides from the roles.

use std::{
    fmt,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use arc_swap::{ArcSwap, ArcSwapOption};
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::{
    AuthError, AuthSetupError, JwtError, Principal, Source, claims,
    jwt::{self, ClaimChecks, VerifyKey},
    oidc_fetch::Fetcher,
    principal::OIDC_PREFIX,
};
use crate::{config::OidcConfig, util::sync::lock};

/// First wait after a failed fetch; doubled after each further failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Longest wait between two attempts while the issuer keeps failing.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// The rooms of a user whose token carries none (no `rooms_claim`
/// configured), from its roles and its (namespaced) user name: the
/// `[[auth.roles]]` table (`auth::roles::rooms_for`).
pub(crate) type RoomsForRoles = Arc<dyn Fn(&[String], &str) -> Vec<Value> + Send + Sync>;

/// Verifies the issuer's tokens; owns the task that keeps its keys fresh,
/// which ends when this is dropped. A reloaded config with the same
/// `[auth.oidc]` keeps it (`Authenticator::renewed`), so its keys are not
/// fetched again for an unrelated edit.
pub(crate) struct Oidc {
    inner: Arc<Inner>,
    refresher: Option<tokio::task::AbortHandle>,
}

struct Inner {
    cfg: OidcConfig,
    fetcher: Fetcher,
    /// Replaced when a reloaded config keeps this issuer but changes
    /// `[[auth.roles]]` ([`Oidc::set_rooms_for_roles`]).
    rooms_for_roles: ArcSwap<RoomsForRoles>,
    /// The keys of the last successful fetch; `None` until one succeeds.
    keys: ArcSwapOption<Vec<VerifyKey>>,
    state: Mutex<FetchState>,
    /// Held for the length of a fetch: one at a time.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct FetchState {
    /// From the last discovery; forgotten when a JWKS fetch fails, so the
    /// next attempt discovers again (the issuer may have moved it).
    jwks_uri: Option<reqwest::Url>,
    /// Why the last fetch failed; `None` after a success.
    last_error: Option<String>,
    /// When a token last caused a fetch: the rate limit's clock.
    last_on_demand: Option<Instant>,
    /// Fetches finished, so one that waited for another can see it finish.
    generation: u64,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.inner.cfg.issuer)
            .field(
                "keys",
                &self.inner.keys.load().as_ref().map_or(0, |k| k.len()),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for Oidc {
    fn drop(&mut self) {
        if let Some(refresher) = &self.refresher {
            refresher.abort();
        }
    }
}

impl Oidc {
    /// Build the client and, inside a Tokio runtime, start the background
    /// refresher (which makes the first fetch at once). Never waits for
    /// the issuer: the host starts whether or not it answers.
    pub(crate) fn new(
        cfg: &OidcConfig,
        rooms_for_roles: RoomsForRoles,
    ) -> Result<Oidc, AuthSetupError> {
        let fetcher = Fetcher::new(
            &cfg.issuer,
            cfg.timeout,
            cfg.max_response_bytes,
            cfg.ca_file.as_deref(),
        )?;
        let inner = Arc::new(Inner {
            cfg: cfg.clone(),
            fetcher,
            rooms_for_roles: ArcSwap::from_pointee(rooms_for_roles),
            keys: ArcSwapOption::empty(),
            state: Mutex::new(FetchState::default()),
            fetching: tokio::sync::Mutex::new(()),
        });
        let refresher = tokio::runtime::Handle::try_current().ok().map(|rt| {
            rt.spawn(refresh_loop(Arc::downgrade(&inner)))
                .abort_handle()
        });
        Ok(Oidc { inner, refresher })
    }

    /// The `[auth.oidc]` table this was built from: a reloaded config with
    /// the same one keeps this (its keys, its refresher) instead of
    /// fetching them again.
    pub(crate) fn config(&self) -> &OidcConfig {
        &self.inner.cfg
    }

    /// Rooms for users whose token names none, from a reloaded
    /// `[[auth.roles]]`.
    pub(crate) fn set_rooms_for_roles(&self, rooms_for_roles: RoomsForRoles) {
        self.inner.rooms_for_roles.store(Arc::new(rooms_for_roles));
    }

    /// Whether `token` claims to come from this issuer (unverified: only
    /// to choose between `[auth.jwt]` and this).
    pub(crate) fn claims_issuer(&self, token: &str) -> bool {
        jwt::peek_issuer(token).is_some_and(|iss| iss == self.inner.cfg.issuer)
    }

    /// Verify `token` and read the principal from its claims (see the
    /// module docs). The user name is not yet namespaced.
    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let inner = &self.inner;
        let (alg, kid) = jwt::peek_header(token).map_err(AuthError::OidcInvalid)?;
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(AuthError::OidcInvalid(JwtError::AlgorithmNotAllowed {
                alg: format!("{alg:?}"),
            }));
        }
        let mut keys = inner.keys.load_full();
        if keys.is_none() && inner.may_fetch_on_demand() {
            // The result is read from `keys`; a failure is logged by `refresh`.
            let _ = inner
                .refresh("a token arrived before any key was known")
                .await;
            keys = inner.keys.load_full();
        }
        let Some(mut keys) = keys else {
            return Err(AuthError::OidcUnavailable(inner.last_error()));
        };
        if let Err(JwtError::UnknownKid { .. }) = jwt::select_key(&keys, kid.as_deref(), alg)
            && inner.may_fetch_on_demand()
        {
            let _ = inner.refresh("a token named a key not fetched yet").await;
            keys = inner.keys.load_full().unwrap_or(keys);
        }
        let key = jwt::select_key(&keys, kid.as_deref(), alg).map_err(AuthError::OidcInvalid)?;
        let cfg = &inner.cfg;
        let leeway_secs = cfg.leeway.as_secs();
        let claims = jwt::decode_claims(
            token,
            key,
            &ClaimChecks {
                issuer: Some(&cfg.issuer),
                audience: &cfg.audience,
                leeway_secs,
            },
        )
        .map_err(AuthError::OidcInvalid)?;
        inner.principal(&claims).map_err(AuthError::OidcInvalid)
    }
}

impl Inner {
    /// The principal a verified token's claims describe.
    fn principal(&self, claims: &Value) -> Result<Principal, JwtError> {
        let cfg = &self.cfg;
        let user = claims::user_at(claims, "sub")
            .ok_or_else(|| JwtError::MissingUserClaim("sub".into()))?;
        // A path that runs into a non-object finds no roles: being lenient
        // here can only take privileges away.
        let roles = claims::roles_in(cfg.roles_claim.lookup(claims).ok().flatten());
        let allowed_rooms = match &cfg.rooms_claim {
            Some(path) => {
                let bad = || JwtError::BadRoomsClaim(path.to_string());
                claims::rooms_from(path.lookup(claims).map_err(|_| bad())?).map_err(|_| bad())?
            }
            None => (self.rooms_for_roles.load())(&roles, &format!("{OIDC_PREFIX}{user}")),
        };
        Ok(Principal {
            user,
            roles,
            allowed_rooms,
            source: Source::Oidc {
                expires: jwt::expiry(claims, cfg.leeway.as_secs()),
            },
        })
    }

    /// Whether a token may cause a fetch now (see the module docs); if so,
    /// the period starts again.
    fn may_fetch_on_demand(&self) -> bool {
        let mut state = lock(&self.state);
        let now = Instant::now();
        match state.last_on_demand {
            Some(at) if now.duration_since(at) < self.cfg.unknown_kid_refresh => false,
            _ => {
                state.last_on_demand = Some(now);
                true
            }
        }
    }

    fn last_error(&self) -> String {
        lock(&self.state)
            .last_error
            .clone()
            .unwrap_or_else(|| "no fetch has finished yet".into())
    }

    /// Fetch the keys now, or wait for the fetch under way and take its
    /// result. On success the keys are replaced; on failure the old ones
    /// are kept and the reason logged.
    async fn refresh(&self, why: &str) -> Result<(), String> {
        let seen = lock(&self.state).generation;
        let _one_at_a_time = self.fetching.lock().await;
        {
            let state = lock(&self.state);
            if state.generation != seen {
                return state.last_error.clone().map_or(Ok(()), Err);
            }
        }
        let result = self.fetch_keys().await;
        let mut state = lock(&self.state);
        state.generation += 1;
        let had = self.keys.load().as_ref().map_or(0, |k| k.len());
        match result {
            Ok(keys) => {
                if state.last_error.take().is_some() || had == 0 {
                    tracing::info!(issuer = %self.cfg.issuer, keys = keys.len(), "[auth.oidc]: signing keys fetched ({why})");
                } else {
                    tracing::debug!(issuer = %self.cfg.issuer, keys = keys.len(), "[auth.oidc]: signing keys fetched again ({why})");
                }
                self.keys.store(Some(Arc::new(keys)));
                Ok(())
            }
            Err(reason) => {
                if had == 0 {
                    tracing::warn!(issuer = %self.cfg.issuer, "[auth.oidc]: cannot fetch the signing keys ({why}): {reason}; OIDC tokens are refused until a fetch succeeds");
                } else {
                    tracing::warn!(issuer = %self.cfg.issuer, "[auth.oidc]: cannot fetch the signing keys ({why}): {reason}; still verifying with the {had} keys fetched before");
                }
                state.last_error = Some(reason.clone());
                Err(reason)
            }
        }
    }

    /// Discovery (unless its `jwks_uri` is known), then the JWKS.
    async fn fetch_keys(&self) -> Result<Vec<VerifyKey>, String> {
        let known = lock(&self.state).jwks_uri.clone();
        let uri = match known {
            Some(uri) => uri,
            None => {
                let uri = self.fetcher.jwks_uri().await?;
                lock(&self.state).jwks_uri = Some(uri.clone());
                uri
            }
        };
        let forget = |reason: String| {
            lock(&self.state).jwks_uri = None;
            reason
        };
        let bytes = self.fetcher.jwks(&uri).await.map_err(forget)?;
        let (keys, skipped) =
            jwt::parse_jwks(&bytes).map_err(|reason| forget(format!("{uri}: {reason}")))?;
        for reason in &skipped {
            // Keycloak lists its encryption key too: expected, not a warning.
            tracing::debug!(%uri, "[auth.oidc]: skipping {reason}");
        }
        if keys.is_empty() {
            return Err(forget(format!(
                "{uri} has no usable signing key ({})",
                if skipped.is_empty() {
                    "it lists no keys".to_owned()
                } else {
                    skipped.join("; ")
                }
            )));
        }
        Ok(keys)
    }
}

/// Fetch at once, then every `refresh_secs`, retrying sooner after a
/// failure; ends when the [`Oidc`] is dropped.
async fn refresh_loop(inner: Weak<Inner>) {
    let mut retry = FIRST_RETRY;
    let mut why = "start";
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let wait = match strong.refresh(why).await {
            Ok(()) => {
                retry = FIRST_RETRY;
                why = "periodic refresh";
                strong.cfg.refresh
            }
            Err(_) => {
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY.min(strong.cfg.refresh));
                why = "retry after a failure";
                wait
            }
        };
        drop(strong);
        tokio::time::sleep(wait).await;
    }
}
