//! `[auth.oidc]` against a local issuer (`oidc_issuer.rs`): tokens on
//! `/ws/`, key rotation, every refusal, the unknown-`kid` rate limit, an
//! issuer that is down, huge or slow (issue 15 item 5).
//!
//! Most checks call the host's [`Authenticator`] directly, which names the
//! reason of a refusal; the client on `/ws/` only ever learns that it was
//! refused, so the tests through a real host check what a client sees.

use std::time::{Duration, Instant};

use modhost::{
    auth::{AuthError, Authenticator, Credentials, JwtError, Principal},
    config::{AuthConfig, JsonPath, OidcConfig},
};
use serde_json::{Value, json};

use crate::{
    harness::{Client, TestHost, Workspace},
    oidc_issuer::{EdKey, Issuer, Mode, b64, issuer_url, now, oidc_table},
};

pub fn config(issuer: &str) -> OidcConfig {
    OidcConfig {
        issuer: issuer.to_owned(),
        audience: vec!["modhost".into()],
        roles_claim: JsonPath::parse("realm_access.roles").unwrap(),
        rooms_claim: None,
        leeway: Duration::ZERO,
        refresh: Duration::from_secs(3600),
        unknown_kid_refresh: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        max_response_bytes: 64 * 1024,
        ca_file: None,
    }
}

pub fn authenticator(cfg: OidcConfig) -> Authenticator {
    Authenticator::new(&AuthConfig {
        oidc: Some(cfg),
        ..AuthConfig::default()
    })
    .expect("[auth.oidc] builds")
}

pub async fn check(auth: &Authenticator, token: &str) -> Result<Principal, AuthError> {
    auth.authenticate(&Credentials::bearer(token)).await
}

/// The token reason of a refusal; any other outcome fails the test.
async fn refusal(auth: &Authenticator, token: &str) -> JwtError {
    match check(auth, token).await {
        Err(AuthError::OidcInvalid(reason)) => reason,
        other => panic!("expected an OIDC token refusal, got {other:?}"),
    }
}

/// Waits until the background fetch has the issuer's keys: a token signed
/// with `key` is accepted.
pub async fn wait_for_keys(auth: &Authenticator, key: &EdKey, issuer: &Issuer) {
    let token = key.sign(&issuer.claims("probe"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while check(auth, &token).await.is_err() {
        assert!(Instant::now() < deadline, "keys never fetched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An issuer publishing one key named `kid`, and an authenticator for it
/// (`tune` adjusts its config) that has fetched the issuer's keys.
async fn issuer_and_auth(
    kid: &str,
    tune: impl FnOnce(&mut OidcConfig),
) -> (EdKey, Issuer, Authenticator) {
    let key = EdKey::generate(kid);
    let issuer = Issuer::start(vec![key.clone()]).await;
    let mut cfg = config(&issuer.url());
    tune(&mut cfg);
    let auth = authenticator(cfg);
    wait_for_keys(&auth, &key, &issuer).await;
    (key, issuer, auth)
}

/// A host with the bundled modules, `[auth.oidc]` for `issuer` (`oidc`:
/// more lines of that table) followed by `tables`, and `extra` as
/// [`Workspace::config_text`] takes it. The workspace must outlive the host.
async fn oidc_host(issuer: &str, oidc: &str, tables: &str, extra: &str) -> (Workspace, TestHost) {
    let mut ws = Workspace::new();
    ws.install_bundled();
    let oidc = oidc_table(issuer, oidc);
    let text = ws
        .config_text(extra)
        .replace("[trigger]", &format!("{oidc}{tables}[trigger]"));
    let host = TestHost::start_text(&ws, &text).await;
    (ws, host)
}

/// A websocket to `host` with `claims` signed by `key` as its token.
async fn connect_signed(host: &TestHost, key: &EdKey, claims: &Value) -> Client {
    host.ws(&key.sign(claims)).await
}

#[tokio::test]
async fn an_oidc_token_opens_a_websocket_with_its_roles_and_rooms() {
    let key = EdKey::generate("k1");
    let issuer = Issuer::start(vec![key.clone()]).await;
    // Status for admins only, so its answer shows the role was read.
    let (_ws, host) = oidc_host(
        &issuer.url(),
        "rooms_claim = \"modhost.rooms\"",
        "",
        "[gateway]\nstatus = \"admins\"",
    )
    .await;

    let mut claims = issuer.claims("f81d4fae-7dec");
    claims["realm_access"]["roles"] = json!(["admin"]);
    claims["modhost"] = json!({"rooms": [{"target": "message", "customer": "7"}]});
    let mut c = connect_signed(&host, &key, &claims).await;
    let hello = c.next().await;
    assert_eq!(hello["is_authorized"], true, "{hello}");
    assert_eq!(hello["user"], "oidc:f81d4fae-7dec", "named by sub: {hello}");
    c.send_json(json!({"type": "status"})).await;
    assert!(
        c.next().await.get("open_connections").is_some(),
        "the admin role came from realm_access.roles"
    );
    let ok = c
        .subscribe(json!({"target": "message", "customer": "7"}), "r1")
        .await;
    assert_eq!(ok["code"], "success", "{ok}");
    let refused = c
        .subscribe(json!({"target": "message", "customer": "8"}), "r2")
        .await;
    assert_ne!(refused["code"], "success", "{refused}");

    // A token of another audience gets the refusal frame.
    let mut other = issuer.claims("f81d4fae-7dec");
    other["aud"] = json!("another-client");
    let mut c = connect_signed(&host, &key, &other).await;
    assert_eq!(c.next().await, json!({"is_authorized": false}));
    host.stop().await;
}

#[tokio::test]
async fn without_a_rooms_claim_an_oidc_user_gets_the_rooms_of_its_roles() {
    let key = EdKey::generate("k1");
    let issuer = Issuer::start(vec![key.clone()]).await;
    let roles = "[[auth.roles]]\nname = \"user\"\nallowed_rooms = [{ target = \"notes\", user = \"{user}\" }]\n\n";
    let (_ws, host) = oidc_host(&issuer.url(), "", roles, "").await;

    let mut claims = issuer.claims("ada");
    claims["realm_access"]["roles"] = json!(["user"]);
    let mut c = connect_signed(&host, &key, &claims).await;
    let hello = c.next().await;
    assert_eq!(hello["is_authorized"], true, "{hello}");
    let own = c
        .subscribe(json!({"target": "notes", "user": "oidc:ada"}), "r1")
        .await;
    assert_eq!(
        own["code"], "success",
        "{{user}} is the OIDC user's name: {own}"
    );
    let other = c
        .subscribe(json!({"target": "notes", "user": "oidc:bob"}), "r2")
        .await;
    assert_ne!(other["code"], "success", "{other}");

    // A role the table does not list gives no rooms.
    let mut claims = issuer.claims("eve");
    claims["realm_access"]["roles"] = json!(["guest"]);
    let mut c = connect_signed(&host, &key, &claims).await;
    assert_eq!(c.next().await["is_authorized"], true);
    let none = c
        .subscribe(json!({"target": "notes", "user": "oidc:eve"}), "r3")
        .await;
    assert_ne!(none["code"], "success", "{none}");
    host.stop().await;
}

#[tokio::test]
async fn a_session_ends_when_its_oidc_token_expires() {
    let key = EdKey::generate("k1");
    let issuer = Issuer::start(vec![key.clone()]).await;
    let (_ws, host) = oidc_host(&issuer.url(), "leeway_secs = 0", "", "").await;
    let mut claims = issuer.claims("erin");
    claims["exp"] = json!(now() + 2);
    let mut c = connect_signed(&host, &key, &claims).await;
    assert_eq!(c.next().await["is_authorized"], true);
    assert_eq!(
        c.close_code().await,
        Some(4003),
        "closed as token expired (revoked)"
    );
    host.stop().await;
}

#[tokio::test]
async fn rotated_keys_old_tokens_fail_new_ones_work() {
    let (old, issuer, auth) =
        issuer_and_auth("old", |c| c.unknown_kid_refresh = Duration::from_secs(1)).await;
    let old_token = old.sign(&issuer.claims("alice"));
    assert_eq!(check(&auth, &old_token).await.unwrap().user, "oidc:alice");

    // The issuer rotates: the new key is published, the old one withdrawn.
    // (Past the rate limit, which waiting for the keys may have started.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = EdKey::generate("new");
    issuer.set_keys(vec![new.clone()]);
    let fetches = issuer.jwks_requests();
    let p = check(&auth, &new.sign(&issuer.claims("bob")))
        .await
        .unwrap();
    assert_eq!(
        p.user, "oidc:bob",
        "the unknown kid made the host fetch again"
    );
    assert_eq!(issuer.jwks_requests(), fetches + 1);
    assert!(matches!(
        refusal(&auth, &old_token).await,
        JwtError::UnknownKid { .. }
    ));
}

#[tokio::test]
async fn keys_are_fetched_again_every_refresh_period_without_any_token() {
    // The shortest period allowed; no token may cause a fetch.
    let (old, issuer, auth) = issuer_and_auth("old", |c| c.refresh = Duration::from_secs(10)).await;
    // Use up the one on-demand fetch the hour-long rate limit allows (if
    // waiting for the keys did not already), so only the period can fetch.
    refusal(&auth, &old.sign_as("made-up", &issuer.claims("dora"))).await;
    let new = EdKey::generate("new");
    issuer.set_keys(vec![new.clone()]);
    let token = new.sign(&issuer.claims("dora"));
    assert!(matches!(
        refusal(&auth, &token).await,
        JwtError::UnknownKid { .. }
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while check(&auth, &token).await.is_err() {
        assert!(Instant::now() < deadline, "the new key was never fetched");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(
        refusal(&auth, &old.sign(&issuer.claims("dora"))).await,
        JwtError::UnknownKid { .. }
    ));
}

#[tokio::test]
async fn expired_foreign_and_forged_tokens_are_refused() {
    let (key, issuer, auth) = issuer_and_auth("k1", |_| {}).await;
    let claims = issuer.claims("alice");

    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 5);
    assert_eq!(refusal(&auth, &key.sign(&expired)).await, JwtError::Expired);
    let mut early = claims.clone();
    early["nbf"] = json!(now() + 600);
    assert_eq!(
        refusal(&auth, &key.sign(&early)).await,
        JwtError::NotYetValid
    );
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        refusal(&auth, &key.sign(&no_exp)).await,
        JwtError::MissingClaim("exp".into())
    );
    let mut audience = claims.clone();
    audience["aud"] = json!(["account", "other"]);
    assert_eq!(
        refusal(&auth, &key.sign(&audience)).await,
        JwtError::WrongAudience
    );
    // Signed with the issuer's own key but claiming another issuer: with
    // only [auth.oidc] configured it is still checked here, and refused.
    let mut foreign = claims.clone();
    foreign["iss"] = json!("http://127.0.0.1:1/realms/other");
    assert_eq!(
        refusal(&auth, &key.sign(&foreign)).await,
        JwtError::WrongIssuer
    );
    // A key the issuer does not publish, under the issuer's kid.
    let stranger = EdKey::generate("k1");
    assert_eq!(
        refusal(&auth, &stranger.sign(&claims)).await,
        JwtError::BadSignature
    );
    assert!(check(&auth, &key.sign(&claims)).await.is_ok());
}

#[tokio::test]
async fn alg_none_and_hmac_with_the_public_key_are_refused_without_a_fetch() {
    let (key, issuer, auth) =
        issuer_and_auth("k1", |c| c.unknown_kid_refresh = Duration::from_secs(1)).await;
    let claims = issuer.claims("mallory");
    let fetches = issuer.jwks_requests();

    let payload = b64(claims.to_string().as_bytes());
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes());
        assert_eq!(
            refusal(&auth, &format!("{header}.{payload}.")).await,
            JwtError::AlgNone
        );
    }
    // HS256 "signed" with the published public key as the secret, as an
    // attacker who read the JWKS would; naming the key, no key, or a key
    // the host does not have (which must not make it fetch either).
    let secrets = [key.public.to_vec(), b64(&key.public).into_bytes()];
    for (secret, kid) in secrets
        .iter()
        .flat_map(|s| [(s, Some("k1")), (s, None), (s, Some("made-up"))])
    {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_eq!(
            refusal(&auth, &forged).await,
            JwtError::AlgorithmNotAllowed {
                alg: "HS256".into()
            }
        );
    }
    assert_eq!(
        issuer.jwks_requests(),
        fetches,
        "refused before any key was looked for"
    );
}

#[tokio::test]
async fn unknown_kids_cost_the_issuer_one_fetch_per_period() {
    let (key, issuer, auth) =
        issuer_and_auth("k1", |c| c.unknown_kid_refresh = Duration::from_secs(2)).await;
    // Past the rate limit, which waiting for the keys may have started.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let start = issuer.jwks_requests();
    let began = Instant::now();

    let claims = issuer.claims("mallory");
    let mut refused = 0;
    for i in 0..300 {
        let token = key.sign_as(&format!("made-up-{i}"), &claims);
        if let JwtError::UnknownKid { .. } = refusal(&auth, &token).await {
            refused += 1;
        }
    }
    assert_eq!(refused, 300);
    let periods = began.elapsed().as_secs() / 2 + 1;
    let fetched = issuer.jwks_requests() - start;
    eprintln!(
        "{fetched} JWKS fetch(es) for 300 unknown kids in {:?}",
        began.elapsed()
    );
    assert!(
        (1..=periods as usize).contains(&fetched),
        "{fetched} JWKS fetches for 300 unknown kids in {:?}",
        began.elapsed()
    );
    // Once the period is over, an unknown kid may fetch again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = issuer.jwks_requests();
    refusal(&auth, &key.sign_as("made-up-again", &claims)).await;
    assert_eq!(issuer.jwks_requests(), before + 1);
}

#[tokio::test]
async fn the_host_starts_while_the_issuer_is_down_and_uses_it_once_up() {
    // A port nothing listens on (yet): connections are refused.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let (_ws, host) = oidc_host(&issuer_url(addr), "unknown_kid_refresh_secs = 1", "", "").await;

    // Other identities work meanwhile; OIDC tokens are refused.
    let mut alice = host.ws("alice-token").await;
    assert_eq!(alice.next().await["is_authorized"], true);
    let key = EdKey::generate("k1");
    let claims =
        json!({"iss": issuer_url(addr), "aud": "modhost", "sub": "carol", "exp": now() + 3600});
    let token = key.sign(&claims);
    match check(&host.state.auth.load(), &token).await {
        Err(AuthError::OidcUnavailable(reason)) => {
            assert!(reason.contains(&addr.to_string()), "{reason}")
        }
        other => panic!("expected the issuer to be unavailable, got {other:?}"),
    }
    let mut c = host.ws(&token).await;
    assert_eq!(c.next().await, json!({"is_authorized": false}));

    // The issuer comes up: the retries find it, with no reload.
    let issuer = Issuer::start_on(addr, vec![key.clone()]).await;
    let auth = host.state.auth.load_full();
    wait_for_keys(&auth, &key, &issuer).await;
    let mut c = host.ws(&token).await;
    assert_eq!(c.next().await["user"], "oidc:carol");

    // Down again: a fetch fails (a token names an unknown kid, once the
    // one-second rate limit allows), and the keys fetched before stay in use.
    // A retry of the host's own loop may be under way at that moment (the
    // token then takes its result, and a failed JWKS fetch sends the next
    // one to discovery): the request is looked for at either address, over
    // a few periods.
    issuer.set_mode(Mode::Down);
    let requests = || issuer.jwks_requests() + issuer.discovery_requests();
    let unknown = key.sign_as("rotated-away", &claims);
    let mut tried = false;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before = requests();
        assert!(matches!(
            check(&auth, &unknown).await,
            Err(AuthError::OidcInvalid(JwtError::UnknownKid { .. }))
        ));
        tried = requests() > before;
        if tried {
            break;
        }
    }
    assert!(tried, "the fetch was tried");
    let mut c = host.ws(&token).await;
    assert_eq!(c.next().await["user"], "oidc:carol");
    host.stop().await;
}

#[tokio::test]
async fn an_issuer_that_answers_with_too_much_too_slowly_or_for_another_is_not_used() {
    let key = EdKey::generate("k1");
    let issuer = Issuer::start(vec![key.clone()]).await;
    let token = key.sign(&issuer.claims("alice"));
    for (mode, expect) in [
        (Mode::Huge, "body over 4096 bytes"),
        (Mode::Slow, "no complete answer within 500 ms"),
        (
            Mode::OtherIssuer,
            "names issuer \"http://evil.example/realms/test\"",
        ),
    ] {
        issuer.set_mode(mode);
        let mut cfg = config(&issuer.url());
        cfg.timeout = Duration::from_millis(500);
        cfg.max_response_bytes = 4096;
        // The token waits for the background fetch, or makes its own.
        let auth = authenticator(cfg);
        let began = Instant::now();
        match check(&auth, &token).await {
            Err(AuthError::OidcUnavailable(reason)) => {
                assert!(reason.contains(expect), "{mode:?}: {reason}")
            }
            other => panic!("{mode:?}: expected the issuer to be unusable, got {other:?}"),
        }
        eprintln!("{mode:?}: refused after {:?}", began.elapsed());
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{mode:?}: refused after {:?}",
            began.elapsed()
        );
    }
}
