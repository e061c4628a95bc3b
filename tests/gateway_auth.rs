//! The websocket gateway's auth modes beyond static tokens: the bootstrap
//! URL and HS256 JWTs as high-templar has them, and a high-templar client
//! working unchanged.

use serde_json::{Value, json};

use crate::gateway::host;
use crate::harness::{Client, TRIGGER_TOKEN, TestHost, Workspace};

#[tokio::test]
async fn bootstrap_url_authorizes_like_high_templar() {
    use axum::{Json, Router, http::HeaderMap, routing::get};
    async fn bootstrap(headers: HeaderMap) -> (axum::http::StatusCode, Json<Value>) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match auth {
            "Token good" => (
                axum::http::StatusCode::OK,
                Json(
                    json!({"allowed_rooms": [{"target": "message", "customer": "1"}], "user": "carol"}),
                ),
            ),
            "Token badrooms" => (
                axum::http::StatusCode::OK,
                Json(json!({"allowed_rooms": ["foo"]})),
            ),
            _ => (axum::http::StatusCode::FORBIDDEN, Json(json!({}))),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            Router::new().route("/api/bootstrap/", get(bootstrap)),
        )
        .await
    });

    let mut ws = Workspace::new();
    ws.install_bundled();
    let text = ws.config_text("").replace(
        "[trigger]",
        &format!(
            "[auth.bootstrap]\nurl = \"http://{api}/api/bootstrap/\"\ntimeout_ms = 2000\n[trigger]"
        ),
    );
    let host = TestHost::start_text(&ws, &text).await;
    let addr = host.addr;

    let mut carol = Client::connect(&format!("ws://{addr}/ws/?token=good")).await;
    let hello = carol.next().await;
    assert_eq!(
        (hello["is_authorized"].clone(), hello["user"].clone()),
        (json!(true), json!("bootstrap:carol"))
    );
    let mut refused = Client::connect(&format!("ws://{addr}/ws/?token=bad")).await;
    assert_eq!(refused.next().await, json!({"is_authorized": false}));
    let mut badrooms = Client::connect(&format!("ws://{addr}/ws/?token=badrooms")).await;
    assert_eq!(badrooms.next().await, json!({"is_authorized": false}));
    // Static tokens still work beside the bootstrap URL.
    let mut alice = Client::connect(&format!("ws://{addr}/ws/?token=alice-token")).await;
    assert_eq!(alice.next().await["user"], "alice");
    host.stop().await;
}

#[tokio::test]
async fn jwt_hs256_tokens_are_checked() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let mut ws = Workspace::new();
    ws.install_bundled();
    let jwt = "[auth.jwt]\nsecret = \"jwt-test-secret\"\nissuer = \"modhost-tests\"\nroles_claim = \"realm_access.roles\"";
    // Status for admins only, so its answer shows the role was read.
    let text = ws
        .config_text("[gateway]\nstatus = \"admins\"")
        .replace("[trigger]", &format!("{jwt}\n[trigger]"));
    let host = TestHost::start_text(&ws, &text).await;
    let addr = host.addr;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |claims: Value, secret: &str| {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let good = sign(
        json!({"sub": "dave", "iss": "modhost-tests", "exp": now + 600, "realm_access": {"roles": ["admin"]},
               "allowed_rooms": [{"target": "message", "customer": "*"}]}),
        "jwt-test-secret",
    );
    let mut dave = Client::connect(&format!("ws://{addr}/ws/?token={good}")).await;
    let hello = dave.next().await;
    assert_eq!(hello["user"], "jwt:dave", "{hello}");
    dave.send_json(json!({"type": "status"})).await;
    assert!(
        dave.next().await.get("open_connections").is_some(),
        "roles come from the dotted claim"
    );
    for bad in [
        sign(
            json!({"sub": "x", "iss": "modhost-tests", "exp": now - 600}),
            "jwt-test-secret",
        ),
        sign(
            json!({"sub": "x", "iss": "modhost-tests", "exp": now + 600}),
            "other-secret",
        ),
        sign(
            json!({"sub": "x", "iss": "someone-else", "exp": now + 600}),
            "jwt-test-secret",
        ),
    ] {
        let mut c = Client::connect(&format!("ws://{addr}/ws/?token={bad}")).await;
        assert_eq!(c.next().await, json!({"is_authorized": false}));
    }
    host.stop().await;
}

#[tokio::test]
async fn a_high_templar_client_works_unchanged() {
    let (_ws, host) = host().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/high_templar_client.py"
    );
    let addr = host.addr.to_string();
    let out = tokio::process::Command::new("python3")
        .args([script, &addr, "alice-token", TRIGGER_TOKEN])
        .output()
        .await
        .expect("python3 runs (it is on every machine of this project)");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert_eq!(report.trim(), "ok");
    host.stop().await;
}
