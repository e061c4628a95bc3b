//! `[auth.oidc]` without an issuer to talk to: what is decided before any
//! key is needed, which verifier a token goes to, and setup refusals. The
//! tests against a served issuer are in the workspace's `tests/oidc.rs`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use super::{authenticate, claims, jwt_config, static_token};
use crate::auth::{AuthError, AuthSetupError, Authenticator, JwtError, OIDC_PREFIX, Source};
use crate::config::{AuthConfig, JsonPath, OidcConfig};

/// An issuer address nothing listens on.
const DOWN: &str = "http://127.0.0.1:1/realms/main";

fn oidc_config(issuer: &str) -> OidcConfig {
    OidcConfig {
        issuer: issuer.into(),
        audience: vec!["modhost".into()],
        roles_claim: JsonPath::parse("realm_access.roles").unwrap(),
        rooms_claim: None,
        leeway: Duration::ZERO,
        refresh: Duration::from_secs(300),
        unknown_kid_refresh: Duration::from_secs(10),
        timeout: Duration::from_millis(500),
        max_response_bytes: 64 * 1024,
        ca_file: None,
    }
}

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_go_to_the_verifier_their_issuer_names() {
    let mut jwt = jwt_config(Some("jwt-secret"));
    jwt.issuer = Some("backend".into());
    let auth = Authenticator::new(&AuthConfig {
        jwt: Some(jwt),
        oidc: Some(oidc_config(DOWN)),
        ..AuthConfig::default()
    })
    .unwrap();
    let mut c = claims();
    c["iss"] = json!("backend");
    let p = authenticate(&auth, &hs256(&c, "jwt-secret")).await.unwrap();
    assert_eq!(p.user, "jwt:alice");

    // Claiming the OIDC issuer, the same kind of token goes to [auth.oidc],
    // which never takes an HMAC signature.
    c["iss"] = json!(DOWN);
    match authenticate(&auth, &hs256(&c, "jwt-secret")).await {
        Err(AuthError::OidcInvalid(JwtError::AlgorithmNotAllowed { alg })) => {
            assert_eq!(alg, "HS256")
        }
        other => panic!("expected [auth.oidc] to refuse HS256, got {other:?}"),
    }
}

#[tokio::test]
async fn without_keys_an_oidc_token_is_refused_as_unavailable() {
    let auth = Authenticator::new(&AuthConfig {
        oidc: Some(oidc_config(DOWN)),
        tokens: vec![static_token("tok-alice", "alice", &["user"])],
        ..AuthConfig::default()
    })
    .unwrap();
    assert!(auth.any_mode());
    // An EdDSA-shaped token: refused because no key could be fetched.
    let header = super::b64(json!({"alg": "EdDSA", "kid": "k1"}).to_string().as_bytes());
    let payload = super::b64(claims().to_string().as_bytes());
    let token = format!("{header}.{payload}.c2ln");
    match authenticate(&auth, &token).await {
        Err(e @ AuthError::OidcUnavailable(_)) => {
            assert!(e.is_upstream_failure());
            assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        }
        other => panic!("expected the issuer to be unavailable, got {other:?}"),
    }
    // The other modes do not wait for the issuer.
    assert_eq!(
        authenticate(&auth, "tok-alice").await.unwrap().user,
        "alice"
    );
}

#[test]
fn an_https_issuer_is_set_up_and_an_unusable_ca_file_is_refused_by_name() {
    let https = oidc_config("https://sso.example.com/realms/main");
    let auth = |oidc: OidcConfig| {
        Authenticator::new(&AuthConfig {
            oidc: Some(oidc),
            ..AuthConfig::default()
        })
    };
    auth(https.clone()).expect("an https issuer is usable");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sso-ca.pem");
    std::fs::write(&ca, "-----BEGIN NOTHING-----\n").unwrap();
    let err = auth(OidcConfig {
        ca_file: Some(ca),
        ..https.clone()
    })
    .unwrap_err();
    assert!(matches!(err, AuthSetupError::OidcCaFile(_)), "{err}");
    assert!(err.to_string().contains("sso-ca.pem"), "{err}");
    let err = auth(oidc_config("ftp://sso.example.com/realms/main")).unwrap_err();
    assert!(matches!(err, AuthSetupError::OidcIssuer { .. }), "{err}");
}

#[test]
fn oidc_names_are_reserved_and_expire_like_jwt_sessions() {
    let err = Authenticator::new(&AuthConfig {
        tokens: vec![static_token("tok", "oidc:alice", &["user"])],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, AuthSetupError::ReservedUserName { prefix, .. } if prefix == OIDC_PREFIX),
        "{err}"
    );
    let expires = std::time::SystemTime::now() + Duration::from_secs(60);
    let p = crate::auth::Principal {
        user: "f81d".into(),
        roles: vec![],
        allowed_rooms: vec![],
        source: Source::Oidc { expires },
    }
    .namespaced();
    assert_eq!(p.user, "oidc:f81d");
    assert_eq!(p.expires(), Some(expires));
    assert!(p.may_resume_as(&p.clone()));
    let mut as_jwt = p.clone();
    as_jwt.source = Source::Jwt { expires };
    assert!(!p.may_resume_as(&as_jwt), "another source is another user");
}
