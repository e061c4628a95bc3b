//! Tests for `crate::auth`, one file per part, sharing the helpers below.

mod authenticator;
mod bootstrap;
mod bootstrap_reply;
mod credentials;
mod jwt;
mod oidc;

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{AuthError, Authenticator, Credentials, JwtError, Principal};
use crate::config::{AuthConfig, JwtConfig, StaticToken};

/// base64url without padding, as JWTs and JWKS use.
fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn static_token(token: &str, user: &str, roles: &[&str]) -> StaticToken {
    StaticToken {
        token: token.into(),
        user: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        allowed_rooms: vec![json!({"target": "message", "user": user})],
    }
}

/// `[auth.jwt]` with an HS256 secret and no leeway (so "expired one second
/// ago" is expired).
fn jwt_config(secret: Option<&str>) -> JwtConfig {
    JwtConfig {
        secret: secret.map(str::to_owned),
        jwks_file: None,
        issuer: None,
        audience: Vec::new(),
        user_claim: "sub".into(),
        roles_claim: "roles".into(),
        rooms_claim: "allowed_rooms".into(),
        leeway: Duration::ZERO,
    }
}

fn with_jwt(jwt: JwtConfig) -> Authenticator {
    Authenticator::new(&AuthConfig {
        jwt: Some(jwt),
        ..AuthConfig::default()
    })
    .expect("valid [auth.jwt]")
}

async fn authenticate(auth: &Authenticator, token: &str) -> Result<Principal, AuthError> {
    auth.authenticate(&Credentials::bearer(token)).await
}

/// The JWT reason of a refusal, failing the test on success or any other error.
async fn jwt_refusal(auth: &Authenticator, token: &str) -> JwtError {
    match authenticate(auth, token).await {
        Err(AuthError::JwtInvalid(reason)) => reason,
        other => panic!("expected a JWT refusal, got {other:?}"),
    }
}

/// Claims valid for an hour, for user `alice`.
fn claims() -> Value {
    json!({"sub": "alice", "exp": now() + 3600, "iat": now()})
}
