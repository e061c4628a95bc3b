//! Bearer tokens of the HTTP API: reading one from a request and comparing
//! it with the configured secrets (`auth::ApiTokens`, digests compared in
//! constant time). Shared by the admin API and `/trigger/`,
//! which is why it sits below both rather than in either.

use axum::http::{HeaderMap, header};

/// The token of an `Authorization: Bearer` header.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
