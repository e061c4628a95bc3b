use serde_json::json;

use super::{authenticate, jwt_config, static_token};
use crate::auth::{AuthError, AuthSetupError, Authenticator, Credentials, Source};
use crate::config::AuthConfig;

fn with_tokens() -> Authenticator {
    Authenticator::new(&AuthConfig {
        tokens: vec![
            static_token("tok-alice", "alice", &["user"]),
            static_token("tok-root", "root", &["admin"]),
        ],
        ..AuthConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn static_token_ok() {
    let auth = with_tokens();
    let p = authenticate(&auth, "tok-alice").await.unwrap();
    assert_eq!(p.user, "alice");
    assert_eq!(p.roles, ["user"]);
    assert!(!p.is_admin());
    assert_eq!(
        p.allowed_rooms,
        [json!({"target": "message", "user": "alice"})]
    );

    assert!(authenticate(&auth, "tok-root").await.unwrap().is_admin());
}

#[tokio::test]
async fn static_token_unknown() {
    let auth = with_tokens();
    for wrong in ["tok-alicE", "tok-alic", "tok-alice2", "x"] {
        assert!(
            matches!(
                authenticate(&auth, wrong).await,
                Err(AuthError::UnknownToken)
            ),
            "{wrong}"
        );
    }
    assert!(matches!(
        auth.authenticate(&Credentials::none()).await,
        Err(AuthError::NoCredentials)
    ));
}

#[tokio::test]
async fn static_token_wins_over_jwt() {
    // A static token that happens to look like a JWT is still a static token.
    let jwt_shaped = "aaaa.bbbb.cccc";
    let auth = Authenticator::new(&AuthConfig {
        tokens: vec![static_token(jwt_shaped, "svc", &[])],
        jwt: Some(jwt_config(Some("secret"))),
        ..AuthConfig::default()
    })
    .unwrap();
    assert_eq!(authenticate(&auth, jwt_shaped).await.unwrap().user, "svc");
    // Not a static token and not JWT-shaped: nobody recognises it.
    assert!(matches!(
        authenticate(&auth, "plain").await,
        Err(AuthError::UnknownToken)
    ));
    // JWT-shaped: the JWT mode decides.
    assert!(matches!(
        authenticate(&auth, "aaaa.bbbb.dddd").await,
        Err(AuthError::JwtInvalid(_))
    ));
}

#[tokio::test]
async fn no_mode_refuses_everyone() {
    let auth = Authenticator::new(&AuthConfig::default()).unwrap();
    assert!(!auth.any_mode());
    assert!(matches!(
        authenticate(&auth, "anything").await,
        Err(AuthError::UnknownToken)
    ));
    assert!(matches!(
        auth.authenticate(&Credentials::none()).await,
        Err(AuthError::NoCredentials)
    ));
}

#[test]
fn empty_static_token_is_a_setup_error() {
    let err = Authenticator::new(&AuthConfig {
        tokens: vec![static_token("", "nobody", &[])],
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, AuthSetupError::EmptyStaticToken { .. }));
}

#[test]
fn debug_does_not_show_secrets() {
    let auth = Authenticator::new(&AuthConfig {
        tokens: vec![static_token("tok-sekrit", "alice", &[])],
        jwt: Some(jwt_config(Some("jwt-sekrit"))),
        ..AuthConfig::default()
    })
    .unwrap();
    let shown = format!("{auth:?}");
    assert!(!shown.contains("sekrit"), "{shown}");
}

#[tokio::test]
async fn user_names_carry_their_source_so_a_jwt_alice_is_not_the_static_alice() {
    let secret = "namespace-secret";
    let mut jwt = jwt_config(Some(secret));
    jwt.leeway = std::time::Duration::from_secs(5);
    let auth = Authenticator::new(&AuthConfig {
        tokens: vec![static_token("tok-alice", "alice", &["user"])],
        jwt: Some(jwt),
        ..AuthConfig::default()
    })
    .unwrap();
    let exp = super::now() + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let by_jwt = authenticate(&auth, &token).await.unwrap();
    let by_static = authenticate(&auth, "tok-alice").await.unwrap();
    assert_eq!(
        (by_jwt.user.as_str(), by_static.user.as_str()),
        ("jwt:alice", "alice")
    );
    assert!(!by_static.may_resume_as(&by_jwt) && !by_jwt.may_resume_as(&by_static));
    // The session ends at `exp` plus the leeway the token was accepted with.
    let expires = std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp + 5);
    assert_eq!(by_jwt.source, Source::Jwt { expires });
}

#[test]
fn a_static_user_may_not_take_another_sources_prefix() {
    for user in ["jwt:alice", "bootstrap:42"] {
        let refused = Authenticator::new(&AuthConfig {
            tokens: vec![static_token("t", user, &[])],
            ..AuthConfig::default()
        })
        .unwrap_err();
        assert!(
            matches!(&refused, AuthSetupError::ReservedUserName { user: u, .. } if u == user),
            "{refused}"
        );
        assert!(refused.to_string().contains("rename it"), "{refused}");
    }
    // Names that merely contain a colon, or the anonymous prefix, are fine.
    for user in ["team:alice", "anonymous-x", "jwt"] {
        let tokens = vec![static_token("t", user, &[])];
        assert!(
            Authenticator::new(&AuthConfig {
                tokens,
                ..AuthConfig::default()
            })
            .is_ok()
        );
    }
}

#[tokio::test]
async fn a_removed_static_token_is_seen_by_its_digest() {
    let auth = with_tokens();
    let p = authenticate(&auth, "tok-alice").await.unwrap();
    let Source::Static { token_digest } = p.source else {
        panic!("{p:?}")
    };
    assert_eq!(auth.static_principal(&token_digest), Some(p));
    let fewer = Authenticator::new(&AuthConfig {
        tokens: vec![static_token("tok-root", "root", &["admin"])],
        ..AuthConfig::default()
    })
    .unwrap();
    assert_eq!(fewer.static_principal(&token_digest), None);
}
