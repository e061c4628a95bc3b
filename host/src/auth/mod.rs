//! Who a websocket client is, decided once at upgrade (DESIGN §5).
//!
//! The gateway reads [`Credentials`] from the upgrade request and asks the
//! shared [`Authenticator`] for a [`Principal`]. A refusal is an
//! [`AuthError`] whose text is for the server log only; the client gets
//! `{"is_authorized": false}` and a close, whatever the reason.
//!
//! ```no_run
//! # async fn demo(config: &modhost::config::AuthConfig, headers: &axum::http::HeaderMap) {
//! use modhost::auth::{Authenticator, Credentials};
//! let auth = Authenticator::new(config).expect("[auth] is usable");
//! let creds = Credentials::from_request(headers, Some("token=abc"), None);
//! match auth.authenticate(&creds).await {
//!     Ok(principal) => println!("hello {}", principal.user),
//!     Err(refused) => tracing::debug!(%refused, "client refused"),
//! }
//! # }
//! ```
//!
//! # Layout
//! - `credentials`: upgrade request → [`Credentials`] (token from Bearer,
//!   `?token=` or the `access_token` cookie; every length bounded)
//! - `authenticator`: [`Authenticator`], the modes tried in order
//! - `tokens`: `[[auth.tokens]]`, compared in constant time
//! - `jwt`: `[auth.jwt]`, HS256 secret and JWKS keys, key selection, claims checks
//! - `oidc`: `[auth.oidc]`, an OpenID Connect issuer's tokens; its keys
//!   fetched, cached and refreshed (rate-limited on unknown `kid`s);
//!   `oidc_fetch`: the bounded discovery and JWKS requests
//! - `bootstrap`: `[auth.bootstrap]`, high-templar's `GET bootstrap/` with forwarded headers
//! - `bootstrap_reply`: its reply → [`Principal`] (user id and roles at
//!   their paths, a name of its own for an anonymous client)
//! - `claims`: user, roles and rooms out of JSON (shared by `jwt`, `oidc` and `bootstrap`)
//! - `principal`: [`Principal`], the result, and [`Source`], the mode that
//!   vouched for it; user names namespaced by it
//! - `error`: [`AuthError`], [`JwtError`], [`AuthSetupError`]
//! - `api_tokens`: [`ApiTokens`], the HTTP API's admin and trigger tokens, as digests
//! - `roles`: `[[auth.roles]]`, rooms by role with `{user}` substituted

mod api_tokens;
mod authenticator;
mod bootstrap;
mod bootstrap_reply;
mod claims;
mod credentials;
mod error;
mod jwt;
mod oidc;
mod oidc_fetch;
mod principal;
pub mod roles;
mod tokens;

#[cfg(test)]
mod tests;

pub use api_tokens::ApiTokens;
pub use authenticator::Authenticator;
pub use bootstrap::MAX_BODY_BYTES as MAX_BOOTSTRAP_BODY_BYTES;
pub use bootstrap_reply::ANONYMOUS_PREFIX;
pub use credentials::{
    Credentials, MAX_CREDENTIAL_HEADER_BYTES, MAX_TOKEN_BYTES, MAX_USER_AGENT_BYTES, TOKEN_COOKIE,
    TOKEN_QUERY_PARAM, TokenSource,
};
pub use error::{AuthError, AuthSetupError, JwtError};
pub use principal::{
    ACCOUNT_PREFIX, ADMIN_ROLE, BOOTSTRAP_PREFIX, JWT_PREFIX, OIDC_PREFIX, Principal,
    RESERVED_PREFIXES, Source,
};
