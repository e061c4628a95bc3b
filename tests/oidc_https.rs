//! `[auth.oidc]` over https and across reloads: an issuer whose
//! certificate a test CA signed is trusted through `ca_file` and refused
//! without it (the built-in roots do not know that CA); a reload that
//! leaves `[auth.oidc]` as it was keeps the keys the host fetched, and one
//! that changes it fetches them again.

use crate::{
    harness::{Client, TestHost, Workspace},
    oidc::{authenticator, check, config, wait_for_keys},
    oidc_issuer::{EdKey, Issuer, oidc_table},
    security_sessions::wait_applied,
};
use modhost::auth::AuthError;

#[tokio::test]
async fn an_https_issuer_is_trusted_through_its_ca_file_and_refused_without_it() {
    let key = EdKey::generate("k1");
    let (issuer, ca_pem) = Issuer::start_https(vec![key.clone()]).await;
    assert!(issuer.url().starts_with("https://"), "{}", issuer.url());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sso-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let token = key.sign(&issuer.claims("dora"));

    let untrusted = authenticator(config(&issuer.url()));
    match check(&untrusted, &token).await {
        Err(AuthError::OidcUnavailable(reason)) => {
            assert!(reason.contains("certificate"), "{reason}");
        }
        other => panic!("an issuer with an unknown CA was used: {other:?}"),
    }

    let mut trusting = config(&issuer.url());
    trusting.ca_file = Some(ca);
    let auth = authenticator(trusting);
    wait_for_keys(&auth, &key, &issuer).await;
    assert_eq!(check(&auth, &token).await.unwrap().user, "oidc:dora");
}

#[tokio::test]
async fn a_reload_keeps_the_issuers_keys_unless_auth_oidc_changed() {
    let key = EdKey::generate("k1");
    let issuer = Issuer::start(vec![key.clone()]).await;
    let ws = Workspace::new();
    let oidc = oidc_table(&issuer.url(), "refresh_secs = 3600");
    let text = ws.write_config(&oidc);
    let host = TestHost::start_text(&ws, &text).await;
    let token = |sub: &str| key.sign(&issuer.claims(sub));
    Client::authorized(&host, &token("dora")).await;
    let fetched = issuer.jwks_requests();
    assert!(fetched >= 1);

    // Another static token: [auth.oidc] is as it was. A new client would
    // find no keys in a rebuilt issuer client and fetch them at once.
    ws.write_config(&format!(
        "{oidc}\n[[auth.tokens]]\ntoken = \"later-token\"\nuser = \"later\"\nroles = []\n"
    ));
    wait_applied(&host, 1).await;
    Client::authorized(&host, "later-token").await;
    Client::authorized(&host, &token("erin")).await;
    assert_eq!(issuer.jwks_requests(), fetched, "keys fetched again");

    // [auth.oidc] changed: its keys are fetched anew.
    ws.write_config(&oidc_table(
        &issuer.url(),
        "refresh_secs = 3600\nleeway_secs = 5",
    ));
    wait_applied(&host, 2).await;
    Client::authorized(&host, &token("fred")).await;
    assert!(issuer.jwks_requests() > fetched);
    host.stop().await;
}
