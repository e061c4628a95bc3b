use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::{authenticate, b64, claims, jwt_config, jwt_refusal, now, with_jwt};
use crate::auth::{AuthError, AuthSetupError, Authenticator, JwtError};
use crate::config::{AuthConfig, JwtConfig};

const SECRET: &str = "test-secret-0123456789";

fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A token with an arbitrary header and claims and an empty signature.
fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

// ---- HS256 ----

#[tokio::test]
async fn hs256_ok() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    let mut c = claims();
    c["roles"] = json!(["user", "admin"]);
    c["allowed_rooms"] = json!([{"target": "message", "customer": "*"}]);
    let p = authenticate(&auth, &hs256(&c, SECRET)).await.unwrap();
    assert_eq!(p.user, "jwt:alice");
    assert_eq!(p.roles, ["user", "admin"]);
    assert!(p.is_admin());
    assert_eq!(
        p.allowed_rooms,
        [json!({"target": "message", "customer": "*"})]
    );
}

#[tokio::test]
async fn hs256_expired() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    let mut c = claims();
    c["exp"] = json!(now() - 10);
    assert_eq!(
        jwt_refusal(&auth, &hs256(&c, SECRET)).await,
        JwtError::Expired
    );
}

#[tokio::test]
async fn leeway_tolerates_recent_expiry() {
    let mut cfg = jwt_config(Some(SECRET));
    cfg.leeway = std::time::Duration::from_secs(60);
    let auth = with_jwt(cfg);
    let mut c = claims();
    c["exp"] = json!(now() - 10);
    assert!(authenticate(&auth, &hs256(&c, SECRET)).await.is_ok());
}

#[tokio::test]
async fn hs256_exp_is_required() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    let c = json!({"sub": "alice"});
    assert_eq!(
        jwt_refusal(&auth, &hs256(&c, SECRET)).await,
        JwtError::MissingClaim("exp".into())
    );
}

#[tokio::test]
async fn hs256_not_yet_valid() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    let mut c = claims();
    c["nbf"] = json!(now() + 600);
    assert_eq!(
        jwt_refusal(&auth, &hs256(&c, SECRET)).await,
        JwtError::NotYetValid
    );
}

#[tokio::test]
async fn hs256_wrong_secret() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    assert_eq!(
        jwt_refusal(&auth, &hs256(&claims(), "another-secret")).await,
        JwtError::BadSignature
    );
}

#[tokio::test]
async fn issuer_checked_when_configured() {
    let mut cfg = jwt_config(Some(SECRET));
    cfg.issuer = Some("https://id.example/realms/app".into());
    let auth = with_jwt(cfg);

    let mut c = claims();
    c["iss"] = json!("https://id.example/realms/app");
    assert!(authenticate(&auth, &hs256(&c, SECRET)).await.is_ok());

    c["iss"] = json!("https://evil.example/");
    assert_eq!(
        jwt_refusal(&auth, &hs256(&c, SECRET)).await,
        JwtError::WrongIssuer
    );

    // Configured means required.
    assert_eq!(
        jwt_refusal(&auth, &hs256(&claims(), SECRET)).await,
        JwtError::MissingClaim("iss".into())
    );
}

#[tokio::test]
async fn audience_checked_when_configured() {
    let mut cfg = jwt_config(Some(SECRET));
    cfg.audience = vec!["modhost".into(), "other".into()];
    let auth = with_jwt(cfg);

    let mut c = claims();
    c["aud"] = json!(["account", "modhost"]);
    assert!(authenticate(&auth, &hs256(&c, SECRET)).await.is_ok());

    c["aud"] = json!("account");
    assert_eq!(
        jwt_refusal(&auth, &hs256(&c, SECRET)).await,
        JwtError::WrongAudience
    );

    assert_eq!(
        jwt_refusal(&auth, &hs256(&claims(), SECRET)).await,
        JwtError::MissingClaim("aud".into())
    );
}

#[tokio::test]
async fn audience_ignored_when_not_configured() {
    // Keycloak puts `aud: "account"` in every token.
    let auth = with_jwt(jwt_config(Some(SECRET)));
    let mut c = claims();
    c["aud"] = json!("account");
    assert!(authenticate(&auth, &hs256(&c, SECRET)).await.is_ok());
}

#[tokio::test]
async fn alg_none_rejected() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    for alg in ["none", "None", "NONE"] {
        let token = unsigned(&json!({"alg": alg, "typ": "JWT"}), &claims());
        assert_eq!(jwt_refusal(&auth, &token).await, JwtError::AlgNone, "{alg}");
    }
    // A real signature appended doesn't help.
    let signed = hs256(&claims(), SECRET);
    let sig = signed.rsplit('.').next().unwrap();
    let token = format!("{}{sig}", unsigned(&json!({"alg": "none"}), &claims()));
    assert_eq!(jwt_refusal(&auth, &token).await, JwtError::AlgNone);
}

#[tokio::test]
async fn roles_via_dotted_path_and_custom_user_claim() {
    let mut cfg = jwt_config(Some(SECRET));
    cfg.roles_claim = "realm_access.roles".into();
    cfg.user_claim = "preferred_username".into();
    let auth = with_jwt(cfg);

    let mut c = claims();
    c["preferred_username"] = json!("bob");
    c["realm_access"] = json!({"roles": ["offline_access", "admin"]});
    let p = authenticate(&auth, &hs256(&c, SECRET)).await.unwrap();
    assert_eq!(p.user, "jwt:bob");
    assert_eq!(p.roles, ["offline_access", "admin"]);
    assert!(p.allowed_rooms.is_empty(), "missing rooms claim = no rooms");

    // Missing roles claim: no roles, still authorized.
    let mut c = claims();
    c["preferred_username"] = json!("bob");
    let p = authenticate(&auth, &hs256(&c, SECRET)).await.unwrap();
    assert!(p.roles.is_empty());
    assert!(!p.is_admin());
}

#[tokio::test]
async fn missing_user_claim() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    let c = json!({"exp": now() + 60});
    assert_eq!(
        jwt_refusal(&auth, &hs256(&c, SECRET)).await,
        JwtError::MissingUserClaim("sub".into())
    );
}

#[tokio::test]
async fn rooms_claim_must_be_array_of_objects() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    for rooms in [json!(["foo"]), json!({"target": "x"}), json!("room")] {
        let mut c = claims();
        c["allowed_rooms"] = rooms.clone();
        assert_eq!(
            jwt_refusal(&auth, &hs256(&c, SECRET)).await,
            JwtError::BadRoomsClaim("allowed_rooms".into()),
            "{rooms}"
        );
    }
}

#[tokio::test]
async fn garbage_in_jwt_shape_is_malformed() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    assert!(matches!(
        jwt_refusal(&auth, "aaaa.bbbb.cccc").await,
        JwtError::Malformed(_)
    ));
    let token = unsigned(&json!({"alg": "XS999"}), &claims());
    assert!(matches!(
        jwt_refusal(&auth, &token).await,
        JwtError::Malformed(_)
    ));
}

// ---- JWKS: EdDSA with a key pair generated at run time ----

/// An Ed25519 key pair made for this test run.
struct EdKey {
    /// PKCS#8 v1 DER of the private key, as jsonwebtoken's signer wants it.
    pkcs8: Vec<u8>,
    public: [u8; 32],
}

impl EdKey {
    fn generate() -> EdKey {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        // RFC 8410: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 },
        // OCTET STRING { OCTET STRING seed } }: a fixed 16-byte prefix.
        let mut pkcs8 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        pkcs8.extend_from_slice(&seed);
        EdKey { pkcs8, public }
    }

    fn jwk(&self, kid: &str) -> Value {
        json!({"kid": kid, "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "x": b64(&self.public)})
    }

    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }
}

/// An RSA public key entry with a made-up modulus of `bits` bits: enough
/// to test loading, never used to verify.
fn fake_rsa_jwk(kid: &str, bits: usize, alg: &str, use_: &str) -> Value {
    let mut n = vec![0u8; bits / 8];
    getrandom::fill(&mut n).unwrap();
    n[0] |= 0x80;
    json!({"kid": kid, "kty": "RSA", "alg": alg, "use": use_, "n": b64(&n), "e": "AQAB"})
}

struct Jwks {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write_jwks(keys: &[Value]) -> Jwks {
    write_jwks_raw(&json!({"keys": keys}).to_string())
}

fn write_jwks_raw(text: &str) -> Jwks {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certs.json");
    std::fs::write(&path, text).unwrap();
    Jwks { _dir: dir, path }
}

fn jwks_config(jwks: &Jwks, secret: Option<&str>) -> JwtConfig {
    JwtConfig {
        jwks_file: Some(jwks.path.clone()),
        ..jwt_config(secret)
    }
}

fn build(cfg: JwtConfig) -> Result<Authenticator, AuthSetupError> {
    Authenticator::new(&AuthConfig {
        jwt: Some(cfg),
        ..AuthConfig::default()
    })
}

/// A Keycloak-like realm: an EdDSA signing key plus keys we must skip.
fn keycloak_like(ed: &EdKey) -> Vec<Value> {
    vec![
        fake_rsa_jwk("rsa-enc", 2048, "RSA-OAEP", "enc"),
        ed.jwk("ed-1"),
        json!({"kid": "hmac", "kty": "oct", "k": b64(b"symmetric")}),
    ]
}

#[tokio::test]
async fn eddsa_from_jwks_ok_with_and_without_kid() {
    let ed = EdKey::generate();
    let jwks = write_jwks(&keycloak_like(&ed));
    let auth = with_jwt(jwks_config(&jwks, None));

    let p = authenticate(&auth, &ed.sign(Some("ed-1"), &claims()))
        .await
        .unwrap();
    assert_eq!(p.user, "jwt:alice");
    // No kid, and exactly one EdDSA key: that one.
    let p = authenticate(&auth, &ed.sign(None, &claims()))
        .await
        .unwrap();
    assert_eq!(p.user, "jwt:alice");
}

#[tokio::test]
async fn eddsa_signed_by_another_key_is_bad_signature() {
    let ed = EdKey::generate();
    let jwks = write_jwks(&[ed.jwk("ed-1")]);
    let auth = with_jwt(jwks_config(&jwks, None));
    let intruder = EdKey::generate();
    assert_eq!(
        jwt_refusal(&auth, &intruder.sign(Some("ed-1"), &claims())).await,
        JwtError::BadSignature
    );
}

#[tokio::test]
async fn unknown_kid() {
    let ed = EdKey::generate();
    let jwks = write_jwks(&[ed.jwk("ed-1")]);
    // The HS256 secret is no fallback for an EdDSA token.
    let auth = with_jwt(jwks_config(&jwks, Some(SECRET)));
    assert_eq!(
        jwt_refusal(&auth, &ed.sign(Some("rotated-away"), &claims())).await,
        JwtError::UnknownKid {
            kid: Some("rotated-away".into()),
            alg: "EdDSA".into()
        }
    );
}

#[tokio::test]
async fn a_long_kid_or_alg_is_logged_cut_to_64_characters() {
    let ed = EdKey::generate();
    let jwks = write_jwks(&[ed.jwk("ed-1")]);
    let auth = with_jwt(jwks_config(&jwks, None));
    let kid = "k".repeat(10_000);
    let refusal = jwt_refusal(&auth, &ed.sign(Some(&kid), &claims())).await;
    assert_eq!(
        refusal,
        JwtError::UnknownKid {
            kid: Some(format!("{}…", "k".repeat(64))),
            alg: "EdDSA".into()
        }
    );
    assert!(refusal.to_string().len() < 200, "{refusal}");
}

#[tokio::test]
async fn no_kid_with_two_candidate_keys_is_ambiguous() {
    let (a, b) = (EdKey::generate(), EdKey::generate());
    let jwks = write_jwks(&[a.jwk("a"), b.jwk("b")]);
    let auth = with_jwt(jwks_config(&jwks, None));
    assert!(matches!(
        jwt_refusal(&auth, &a.sign(None, &claims())).await,
        JwtError::AmbiguousKey { count: 2, .. }
    ));
    // With a kid, each verifies.
    assert!(
        authenticate(&auth, &b.sign(Some("b"), &claims()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn algorithm_confusion_rejected() {
    let ed = EdKey::generate();
    let rsa = fake_rsa_jwk("rsa-sig", 2048, "RS256", "sig");
    let rsa_n = rsa["n"].as_str().unwrap().to_owned();
    let jwks = write_jwks(&[ed.jwk("ed-1"), rsa]);
    let auth = with_jwt(jwks_config(&jwks, None));

    // HS256 "signed" with the public key material as the HMAC secret, in
    // every form an attacker might guess, naming the public key's kid.
    let x = b64(&ed.public);
    let guesses: [(&str, &[u8]); 4] = [
        ("ed-1", &ed.public),
        ("ed-1", x.as_bytes()),
        ("rsa-sig", rsa_n.as_bytes()),
        ("rsa-sig", b"AQAB"),
    ];
    for (kid, secret) in guesses {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.into());
        let token = encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap();
        assert_eq!(
            jwt_refusal(&auth, &token).await,
            JwtError::AlgorithmNotAllowed {
                alg: "HS256".into()
            },
            "{kid}"
        );
    }
    // Without a kid there is no HS256 key to pick at all.
    let token = hs256(&claims(), &x);
    assert!(matches!(
        jwt_refusal(&auth, &token).await,
        JwtError::UnknownKid { kid: None, .. }
    ));
}

#[tokio::test]
async fn secret_and_jwks_together() {
    let ed = EdKey::generate();
    let jwks = write_jwks(&[ed.jwk("ed-1")]);
    let auth = with_jwt(jwks_config(&jwks, Some(SECRET)));
    assert!(authenticate(&auth, &hs256(&claims(), SECRET)).await.is_ok());
    assert!(
        authenticate(&auth, &ed.sign(Some("ed-1"), &claims()))
            .await
            .is_ok()
    );
    // An HS256 token with a kid no JWKS key has falls back to the secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs-key-1".into());
    let token = encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert!(authenticate(&auth, &token).await.is_ok());
}

#[test]
fn rsa_keys_load_and_weak_or_encryption_keys_are_skipped() {
    let strong = write_jwks(&[fake_rsa_jwk("sig", 2048, "RS256", "sig")]);
    assert!(build(jwks_config(&strong, None)).is_ok());

    let weak = write_jwks(&[
        fake_rsa_jwk("weak", 1024, "RS256", "sig"),
        fake_rsa_jwk("enc", 2048, "RSA-OAEP", "enc"),
        json!({"kid": "mismatch", "kty": "RSA", "alg": "ES256", "n": "AQAB", "e": "AQAB"}),
        json!({"kid": "weird", "kty": "XYZ"}),
    ]);
    match build(jwks_config(&weak, None)) {
        Err(AuthSetupError::JwksNoUsableKey { skipped, .. }) => {
            for kid in ["weak", "enc", "mismatch", "weird"] {
                assert!(skipped.contains(kid), "{skipped}");
            }
        }
        other => panic!("expected JwksNoUsableKey, got {other:?}"),
    }
}

#[test]
fn jwks_setup_errors() {
    let missing = JwtConfig {
        jwks_file: Some("/nonexistent/certs.json".into()),
        ..jwt_config(None)
    };
    assert!(matches!(
        build(missing),
        Err(AuthSetupError::JwksRead { .. })
    ));

    let not_json = write_jwks_raw("-----BEGIN PUBLIC KEY-----");
    assert!(matches!(
        build(jwks_config(&not_json, None)),
        Err(AuthSetupError::JwksParse { .. })
    ));

    let empty = write_jwks(&[]);
    assert!(matches!(
        build(jwks_config(&empty, None)),
        Err(AuthSetupError::JwksNoUsableKey { .. })
    ));

    // Bad Ed25519 material: wrong length.
    let short = write_jwks(&[json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[1, 2, 3])})]);
    assert!(matches!(
        build(jwks_config(&short, None)),
        Err(AuthSetupError::JwksNoUsableKey { .. })
    ));

    assert!(matches!(
        build(jwt_config(None)),
        Err(AuthSetupError::JwtNoKey)
    ));
    assert!(matches!(
        build(jwt_config(Some(""))),
        Err(AuthSetupError::EmptyJwtSecret)
    ));
}

#[tokio::test]
async fn jwt_refusal_is_an_auth_error_with_a_loggable_reason() {
    let auth = with_jwt(jwt_config(Some(SECRET)));
    let mut c = claims();
    c["exp"] = json!(now() - 100);
    let err = authenticate(&auth, &hs256(&c, SECRET)).await.unwrap_err();
    assert!(matches!(err, AuthError::JwtInvalid(JwtError::Expired)));
    assert_eq!(err.to_string(), "invalid JWT: expired");
    assert!(!err.is_upstream_failure());
}
