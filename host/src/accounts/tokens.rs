//! Access tokens: short-lived JWTs the host signs itself with EdDSA
//! (Ed25519), with its own key in `state_dir` (`accounts-host.key`, the
//! format and handling of the external modules' host key, but a key of its
//! own: a signature made for one purpose is never valid for the other).
//!
//! Claims: `iss` = [`ISSUER`], `sub` = the user's name, `sid` = its login
//! session, `iat`, `exp`, and `jti`. Roles and rooms are *not* in the
//! token: the authenticator reads them from the store when the token is
//! used, so a role removed or a user disabled counts at once, not when the
//! token expires. The header names the key (`kid`), which is how the
//! authenticator tells these tokens from an identity provider's.

use std::time::{Duration, SystemTime};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use ed25519_dalek::{Signer as _, SigningKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `iss` of every access token.
pub const ISSUER: &str = "modhost";

/// The key's file name in `state_dir`.
pub const KEY_FILE: &str = "accounts-host.key";

/// Clock skew tolerated on `exp` when verifying: none. The host checks
/// tokens it signed itself, on its own clock.
const LEEWAY_SECS: u64 = 0;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The user's name in the store.
    pub sub: String,
    /// The login session (ended by logout).
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Random id of this token.
    pub jti: String,
}

/// Why an access token was refused (for the log; clients only learn that
/// it was).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    /// Bad signature, wrong issuer, malformed, wrong algorithm.
    #[error("not a valid access token of this host: {0}")]
    Invalid(String),
    /// Past `exp`.
    #[error("the access token has expired; get a new one from POST /auth/refresh")]
    Expired,
}

/// Signs and verifies access tokens.
pub struct TokenKeys {
    signing: SigningKey,
    verifying: DecodingKey,
    kid: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("TokenKeys").field("kid", &self.kid).finish()
    }
}

impl TokenKeys {
    /// Keys from the host's signing key.
    pub fn new(signing: SigningKey) -> TokenKeys {
        let public = signing.verifying_key();
        let kid = format!(
            "modhost-{}",
            hex::encode(&Sha256::digest(public.as_bytes())[..8])
        );
        TokenKeys {
            verifying: DecodingKey::from_ed_der(public.as_bytes()),
            signing,
            kid,
        }
    }

    /// The `kid` in every token this host signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A token for `user` in login session `session`, valid for `ttl`.
    pub fn issue(
        &self,
        user: &str,
        session: &str,
        ttl: Duration,
    ) -> Result<String, getrandom::Error> {
        let now = unix(SystemTime::now());
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            sub: user.to_owned(),
            sid: session.to_owned(),
            iat: now,
            exp: now + ttl.as_secs(),
            jti: super::random_id()?,
        };
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(serde_json::to_vec(&claims).unwrap_or_default())
        );
        let signature = self.signing.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            B64URL.encode(signature.to_bytes())
        ))
    }

    /// Whether `token`'s header names this host's key: only then is it
    /// this host's to decide on.
    pub fn is_ours(&self, token: &str) -> bool {
        let Some(header) = token.split('.').next() else {
            return false;
        };
        B64URL
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|h| h.get("kid").and_then(|k| k.as_str()) == Some(self.kid.as_str()))
    }

    /// The claims of `token`, once its signature, issuer and expiry check out.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AccessTokenError> {
        // The algorithm is fixed here, whatever the header says.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.verifying, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.into_kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AccessTokenError::Expired,
                other => AccessTokenError::Invalid(format!("{other:?}")),
            })?;
        // jsonwebtoken still accepts a token in the second of its `exp`;
        // a session opened with it ends at `exp` itself, so this does too.
        if claims.exp <= unix(SystemTime::now()) {
            return Err(AccessTokenError::Expired);
        }
        Ok(claims)
    }
}

/// `at` in Unix seconds.
pub(super) fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
