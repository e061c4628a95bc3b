//! `[auth.oidc]` validation: an OpenID Connect issuer (Keycloak and
//! others), from its raw struct into [`OidcConfig`].
//!
//! Kept apart from `auth.rs` because the table is a unit of its own: the
//! issuer the host fetches keys from and how often, bounded so that a slow
//! or hostile issuer can cost the host little.

use std::{path::Path, time::Duration};

use serde::Deserialize;

use super::{
    codec::{OneOrMany, bounded, resolve},
    declare::keyed,
    error::{KeyPath, Problem},
    json_path::JsonPath,
    model::OidcConfig,
    value::token_text,
};

keyed! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    pub(super) struct RawOidc {
        pub(super) issuer: Option<String>,
        pub(super) audience: OneOrMany,
        pub(super) roles_claim: Option<String>,
        pub(super) rooms_claim: Option<String>,
        pub(super) leeway_secs: Option<u64>,
        pub(super) refresh_secs: Option<u64>,
        pub(super) unknown_kid_refresh_secs: Option<u64>,
        pub(super) timeout_ms: Option<u64>,
        pub(super) max_response_bytes: Option<u64>,
        pub(super) ca_file: Option<String>,
    }
}

/// Keycloak's realm roles.
const DEFAULT_ROLES_CLAIM: &str = "realm_access.roles";
const DEFAULT_LEEWAY_SECS: u64 = 30;
const DEFAULT_REFRESH_SECS: u64 = 300;
const DEFAULT_UNKNOWN_KID_REFRESH_SECS: u64 = 10;
const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// A Keycloak realm's discovery document is about 6 KiB and its JWKS a few
/// KiB per key.
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 * 1024;

pub(super) fn validate_oidc(
    raw: RawOidc,
    path: &KeyPath,
    base: &Path,
) -> Result<OidcConfig, Problem> {
    let issuer_path = path.key("issuer");
    let issuer = raw.issuer.ok_or_else(|| {
        Problem::invalid(
            &issuer_path,
            "[auth.oidc] has no issuer, so there is nothing to fetch keys from",
            "add issuer = \"http://sso.internal:8080/realms/main\" (the `iss` of its tokens), or remove [auth.oidc]",
        )
    })?;
    let issuer = issuer_url(&issuer_path, &issuer)?;
    let audience = raw
        .audience
        .into_vec()
        .iter()
        .map(|a| token_text(&path.key("audience"), a, "an accepted `aud` value"))
        .collect::<Result<Vec<_>, _>>()?;
    if audience.is_empty() {
        // Without it, a token the issuer made for any other client of the
        // realm would open a websocket here.
        return Err(Problem::invalid(
            &path.key("audience"),
            "[auth.oidc] has no audience: tokens the issuer made for other clients would be accepted",
            "add audience = \"modhost\" (the client id the tokens are for, as their `aud` names it)",
        ));
    }
    let claim_path = |key: &str, text: &str| {
        JsonPath::parse(text).map_err(|e| {
            let at = path.key(key);
            Problem::invalid(
                &at,
                format!("{at} is not a usable claim path: {e}"),
                "name the claim's keys from the top down, separated by dots: \"realm_access.roles\" or \"resource_access.modhost.roles\"",
            )
        })
    };
    let roles_claim = claim_path(
        "roles_claim",
        raw.roles_claim.as_deref().unwrap_or(DEFAULT_ROLES_CLAIM),
    )?;
    let rooms_claim = raw
        .rooms_claim
        .as_deref()
        .map(|text| claim_path("rooms_claim", text))
        .transpose()?;
    let leeway = bounded(
        &path.key("leeway_secs"),
        raw.leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS),
        0,
        3600,
        "clock skew tolerated for exp/nbf, in seconds, at most 1 hour (default 30)",
    )?;
    let refresh = bounded(
        &path.key("refresh_secs"),
        raw.refresh_secs.unwrap_or(DEFAULT_REFRESH_SECS),
        10,
        86_400,
        "how often the issuer's keys are fetched again, in seconds, 10 to 86400 (default 300)",
    )?;
    let unknown_kid_refresh = bounded(
        &path.key("unknown_kid_refresh_secs"),
        raw.unknown_kid_refresh_secs
            .unwrap_or(DEFAULT_UNKNOWN_KID_REFRESH_SECS),
        1,
        3600,
        "least time between two key fetches caused by tokens naming an unknown key, in seconds, 1 to 3600 (default 10)",
    )?;
    let timeout = bounded(
        &path.key("timeout_ms"),
        raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
        1,
        60_000,
        "how long one request to the issuer may take, body included, in milliseconds, at most 1 minute (default 5000)",
    )?;
    let max_response_bytes = bounded(
        &path.key("max_response_bytes"),
        raw.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
        1024,
        16 * 1024 * 1024,
        "largest discovery document or JWKS read, in bytes, 1024 to 16 MiB (default 262144)",
    )?;
    // Read when the issuer's client is built (a missing or empty file is
    // refused there, naming it): only the path is checked here.
    let ca_file = raw
        .ca_file
        .as_deref()
        .map(|f| resolve(base, &path.key("ca_file"), f))
        .transpose()?;
    Ok(OidcConfig {
        issuer,
        audience,
        roles_claim,
        rooms_claim,
        leeway: Duration::from_secs(leeway),
        refresh: Duration::from_secs(refresh),
        unknown_kid_refresh: Duration::from_secs(unknown_kid_refresh),
        timeout: Duration::from_millis(timeout),
        max_response_bytes: usize::try_from(max_response_bytes).unwrap_or(usize::MAX),
        ca_file,
    })
}

/// The issuer as written (it is compared with `iss` byte for byte), which
/// must be an http(s) URL without query or fragment.
fn issuer_url(path: &KeyPath, text: &str) -> Result<String, Problem> {
    let usable = url::Url::parse(text).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.query().is_none()
            && u.fragment().is_none()
    });
    if !usable || text.trim() != text {
        return Err(Problem::invalid(
            path,
            format!("{path} = {text:?} is not an http(s) URL without query or fragment"),
            "write the issuer exactly as its tokens' `iss` says: \"http://sso.internal:8080/realms/main\"",
        ));
    }
    Ok(text.to_owned())
}
