//! Accounts over HTTP and on `/ws/` (issue 15 items 3 and 4): every path of
//! `POST /auth/login|refresh|logout`, uniform refusals, failed-login
//! limits per user and per address, access tokens on `/ws/` with rooms
//! from `[[auth.roles]]`, and their end (expiry, logout, disable).

use std::time::Duration;

use modhost::accounts::{IP_FAILURE_LIMIT, Store, USER_FAILURE_LIMIT, admin};
use serde_json::{Value, json};

use crate::harness::{Client, TestHost, Workspace, http};

const ROLES: &str = r#"
[auth.accounts]
enabled = true
access_token_secs = 600
[[auth.roles]]
name = "user"
allowed_rooms = [{ target = "notes", user = "{user}" }, { target = "message", customer = "*" }]
"#;

/// A workspace whose store holds `alice` (role user), `bob` (disabled) and
/// `carol` (no password).
fn workspace() -> Workspace {
    let ws = Workspace::new();
    let store = Store::open_in(&ws.path().join("state")).unwrap();
    let user = vec!["user".to_owned()];
    admin::add(&store, "alice", None, &user, Some("alice password")).unwrap();
    admin::add(&store, "bob", None, &user, Some("bob password")).unwrap();
    store.set_disabled("cli", "bob", true).unwrap();
    admin::add(&store, "carol", None, &user, None).unwrap();
    ws
}

pub async fn post(host: &TestHost, path: &str, body: Value) -> (u16, Value) {
    let resp = http()
        .post(host.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn login(host: &TestHost, user: &str, password: &str) -> (u16, Value) {
    post(
        host,
        "/auth/login",
        json!({"username": user, "password": password}),
    )
    .await
}

#[tokio::test]
async fn login_refresh_and_logout_answer_and_refuse_as_documented() {
    let ws = workspace();
    let host = TestHost::start(&ws, ROLES).await;

    let resp = http()
        .post(host.url("/auth/login"))
        .json(&json!({"username": "alice", "password": "alice password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["expires_in"], 600);
    let (access, refresh) = (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(access.split('.').count(), 3, "a JWT");

    // Unknown user, wrong password, disabled user, no password: one answer.
    let refused =
        json!({"error": {"code": "invalid-credentials", "message": "wrong user name or password"}});
    for (user, password) in [
        ("nobody", "alice password"),
        ("alice", "wrong password"),
        ("bob", "bob password"),
        ("carol", ""),
    ] {
        assert_eq!(
            login(&host, user, password).await,
            (401, refused.clone()),
            "{user}"
        );
    }

    // JSON only, small, exactly the documented fields.
    let form = http()
        .post(host.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=alice&password=alice+password")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let (status, body) = post(&host, "/auth/login", json!({"username": "alice"})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("bad-request"))
    );
    let (status, _) = post(
        &host,
        "/auth/login",
        json!({"username": "alice", "password": "alice password", "admin": true}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post(
        &host,
        "/auth/login",
        json!({"username": "alice", "password": "x".repeat(5000)}),
    )
    .await;
    assert_eq!(status, 413);

    // Refresh: new tokens, and the old refresh token is spent.
    let (status, next) = post(&host, "/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(status, 200, "{next}");
    assert_ne!(next["refresh_token"], json!(refresh));
    let (status, body) = post(&host, "/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("invalid-token"))
    );
    let (status, _) = post(&host, "/auth/refresh", json!({"refresh_token": "made-up"})).await;
    assert_eq!(status, 401);

    // The reuse above ended that session: log in again for logout.
    let (_, again) = login(&host, "alice", "alice password").await;
    let (status, body) = post(
        &host,
        "/auth/logout",
        json!({"refresh_token": again["refresh_token"]}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"logged_out": true})));
    let (status, _) = post(
        &host,
        "/auth/logout",
        json!({"refresh_token": again["refresh_token"]}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(
        &host,
        "/auth/refresh",
        json!({"refresh_token": again["refresh_token"]}),
    )
    .await;
    assert_eq!(status, 401);
    // Its access token is refused on /ws/ from now on.
    let mut c = host.ws(again["access_token"].as_str().unwrap()).await;
    assert_eq!(c.next().await, json!({"is_authorized": false}));
    host.stop().await;
}

#[tokio::test]
async fn an_access_token_opens_a_socket_with_rooms_from_its_roles() {
    let mut ws = workspace();
    ws.install_bundled();
    let host = TestHost::start(&ws, ROLES).await;
    let (_, tokens) = login(&host, "alice", "alice password").await;
    let access = tokens["access_token"].as_str().unwrap();

    let mut c = host.ws(access).await;
    let hello = c.next().await;
    assert_eq!(hello["is_authorized"], true, "{hello}");
    assert_eq!(
        hello["allowed_rooms"],
        json!([{"target": "notes", "user": "account:alice"}, {"target": "message", "customer": "*"}])
    );
    let own = c
        .subscribe(json!({"target": "notes", "user": "account:alice"}), "1")
        .await;
    assert_eq!(own["code"], "success", "{own}");
    let other = c
        .subscribe(json!({"target": "notes", "user": "account:bob"}), "2")
        .await;
    assert_eq!(other["message"], "room-not-found", "{other}");
    let who = c.call("echo", "whoami", json!({}), "3").await;
    assert_eq!(who["result"]["user"], "account:alice", "{who}");
    assert_eq!(who["result"]["roles"], json!(["user"]), "{who}");

    // A disabled user's token is refused at its next use.
    modhost::accounts::Store::open_in(&ws.path().join("state"))
        .unwrap()
        .set_disabled("cli", "alice", true)
        .unwrap();
    let mut refused = host.ws(access).await;
    assert_eq!(refused.next().await, json!({"is_authorized": false}));

    // A token signed by another key with the same claims is refused.
    let forged = modhost::accounts::TokenKeys::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
        .issue("alice", "s", Duration::from_secs(60))
        .unwrap();
    let mut forged_client = host.ws(&forged).await;
    assert_eq!(forged_client.next().await, json!({"is_authorized": false}));
    host.stop().await;
}

#[tokio::test]
async fn an_expired_access_token_is_refused_and_ends_its_socket() {
    let ws = workspace();
    let host = TestHost::start(
        &ws,
        &ROLES.replace("access_token_secs = 600", "access_token_secs = 2"),
    )
    .await;
    let (_, tokens) = login(&host, "alice", "alice password").await;
    assert_eq!(tokens["expires_in"], 2);
    let access = tokens["access_token"].as_str().unwrap();
    let mut open = Client::authorized(&host, access).await;
    // The socket opened with it ends when it expires.
    let started = std::time::Instant::now();
    assert_eq!(
        open.close_code().await,
        Some(4003),
        "closed as token expired (revoked)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    let mut late = host.ws(access).await;
    assert_eq!(late.next().await, json!({"is_authorized": false}));
    host.stop().await;
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_per_user_and_per_address() {
    let ws = workspace();
    let host = TestHost::start(&ws, ROLES).await;
    for _ in 0..USER_FAILURE_LIMIT {
        assert_eq!(login(&host, "alice", "wrong password").await.0, 401);
    }
    let (status, body) = login(&host, "alice", "alice password").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (429, json!("rate-limited"))
    );
    // A name that does not exist is limited alike: the answer tells nothing.
    for _ in 0..USER_FAILURE_LIMIT {
        assert_eq!(login(&host, "ghost", "wrong password").await.0, 401);
    }
    assert_eq!(
        login(&host, "ghost", "wrong password").await,
        (status, body)
    );
    // Per address: failures for many names add up (all from 127.0.0.1).
    let spent = 2 * USER_FAILURE_LIMIT;
    for i in spent..IP_FAILURE_LIMIT {
        assert_eq!(
            login(&host, &format!("name{i}"), "wrong password").await.0,
            401
        );
    }
    assert_eq!(login(&host, "someone-else", "any password").await.0, 429);
    host.stop().await;
}

#[tokio::test]
async fn accounts_are_on_only_when_enabled_or_a_store_holds_a_user() {
    let ws = Workspace::new();
    let host = TestHost::start(&ws, "").await;
    assert!(
        !ws.path()
            .join("state")
            .join(modhost::accounts::DB_FILE)
            .exists()
    );
    assert_eq!(login(&host, "alice", "alice password").await.0, 404);
    host.stop().await;

    // The job launcher's first launch makes the store, with no user in
    // it: that alone turns nothing on at the next start.
    let db = ws.path().join("state").join(modhost::accounts::DB_FILE);
    let store = Store::open_in(&ws.path().join("state")).unwrap();
    let host = TestHost::start(&ws, "").await;
    assert_eq!(login(&host, "alice", "alice password").await.0, 404);
    host.stop().await;
    assert!(db.exists());

    // A user in it does, with [auth.accounts] enabled unset.
    admin::add(&store, "alice", None, &[], Some("alice password")).unwrap();
    let host = TestHost::start(&ws, "").await;
    assert_eq!(login(&host, "alice", "alice password").await.0, 200);
    host.stop().await;
    let off = TestHost::start(&ws, "[auth.accounts]\nenabled = false\n").await;
    assert_eq!(login(&off, "alice", "alice password").await.0, 404);
    off.stop().await;
}
