//! `[auth.oidc]`: one EdDSA token verified with the issuer's keys already
//! cached (header, key choice, signature, claims, principal), as every
//! websocket upgrade with an OIDC token pays it. The issuer is a minimal
//! HTTP server on 127.0.0.1 answering discovery and the JWKS.

use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey};
use modhost::{
    auth::{Authenticator, Credentials},
    config::{AuthConfig, JsonPath, OidcConfig},
};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Serve `discovery` and `jwks` (by path) to every connection, one request each.
async fn serve(listener: tokio::net::TcpListener, discovery: String, jwks: String) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let (discovery, jwks) = (discovery.clone(), jwks.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let body = if head.contains("openid-configuration") {
                discovery
            } else {
                jwks
            };
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        });
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let issuer = format!("http://{}/realms/bench", listener.local_addr().unwrap());
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/certs")}).to_string();
    let jwks = json!({"keys": [{"kid": "k1", "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
        "x": b64(key.verifying_key().as_bytes())}]})
    .to_string();
    rt.spawn(serve(listener, discovery, jwks));

    let auth = rt.block_on(async {
        Authenticator::new(&AuthConfig {
            oidc: Some(OidcConfig {
                issuer: issuer.clone(),
                audience: vec!["modhost".into()],
                roles_claim: JsonPath::parse("realm_access.roles").unwrap(),
                rooms_claim: Some(JsonPath::parse("allowed_rooms").unwrap()),
                leeway: Duration::from_secs(30),
                refresh: Duration::from_secs(3600),
                unknown_kid_refresh: Duration::from_secs(3600),
                timeout: Duration::from_secs(5),
                max_response_bytes: 64 * 1024,
                ca_file: None,
            }),
            ..AuthConfig::default()
        })
        .unwrap()
    });
    let header = b64(json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"})
        .to_string()
        .as_bytes());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    // About the size of a Keycloak access token's claims.
    let claims = json!({"iss": issuer, "aud": "modhost", "sub": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "exp": exp, "iat": exp - 3600, "azp": "modhost", "preferred_username": "alice",
        "realm_access": {"roles": ["offline_access", "uma_authorization", "user"]},
        "allowed_rooms": [{"target": "message", "customer": "*"}]});
    let signing_input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let token = format!(
        "{signing_input}.{}",
        b64(&key.sign(signing_input.as_bytes()).to_bytes())
    );
    let creds = Credentials::bearer(token);
    // The first verification waits for the keys.
    rt.block_on(async {
        for _ in 0..500 {
            if auth.authenticate(&creds).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the bench issuer's keys were never fetched");
    });

    let mut group = c.benchmark_group("oidc");
    group.throughput(criterion::Throughput::Elements(1));
    group.bench_function("verify_eddsa_token_cached_keys", |b| {
        b.iter(|| {
            rt.block_on(auth.authenticate(std::hint::black_box(&creds)))
                .expect("verifies")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
