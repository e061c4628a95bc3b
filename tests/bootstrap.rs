//! `[auth.bootstrap]` through the real `modhost` binary against a stand-in
//! backend: high-templar 2.x's user objects, and clients the backend names
//! nobody for.
//!
//! Users are read from the admin API, not from the first frame: only
//! modhost's own dialect names the user there, and high-templar clients
//! (like these) may be answered in high-templar's.

use std::{net::SocketAddr, time::Duration};

use axum::{Json, Router, http::HeaderMap, http::StatusCode, routing::get};
use serde_json::{Value, json};

use crate::harness::{Client, Workspace, api_connections};
use crate::harness_process::ProcessHost;

/// The backend's answer to each `?token=` (forwarded as `Token <t>`).
async fn bootstrap(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let reply = match auth {
        // high-templar 2.x: the user is an object with an id.
        "Token v2" => {
            json!({"user": {"id": 1}, "allowed_rooms": [{"target": "message", "customer": "1"}]})
        }
        // 3.x: rooms only.
        "Token anon" => json!({"allowed_rooms": [{"target": "message", "customer": "*"}]}),
        "Token odd" => json!({"user": {"id": {"pk": 1}}, "allowed_rooms": []}),
        _ => return (StatusCode::FORBIDDEN, Json(json!({}))),
    };
    (StatusCode::OK, Json(reply))
}

/// Serves [`bootstrap`] on 127.0.0.1 and starts the binary asking it.
async fn host_with_backend() -> (Workspace, ProcessHost) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            Router::new().route("/api/bootstrap/", get(bootstrap)),
        )
        .await
    });
    let ws = Workspace::new();
    // A generous timeout: a busy machine must not refuse a backend that answers.
    let host = ProcessHost::start(
        &ws,
        &format!("[auth.bootstrap]\nurl = \"http://{api}/api/bootstrap/\"\ntimeout_ms = 60000\n"),
    );
    (ws, host)
}

/// Connects with `?token=token` and checks it is authorized.
async fn authorized(host: &ProcessHost, token: &str) -> Client {
    let mut c = Client::connect(&host.ws_url(token)).await;
    let hello = c.next().await;
    assert_eq!(hello["is_authorized"], true, "{hello}");
    c
}

/// Subscribes and checks it succeeded. The reply also means the session is
/// registered, so the admin API lists it.
async fn subscribe(c: &mut Client, customer: &str) {
    let room = json!({"target": "message", "customer": customer});
    let reply = c.subscribe(room, customer).await;
    assert_eq!(reply["code"], "success", "{reply}");
}

/// The users of the open sessions, in session order.
async fn users(host: &ProcessHost) -> Vec<String> {
    api_connections(&host.url(""))
        .await
        .iter()
        .map(|row| row["user"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn high_templar_2x_user_objects_connect_and_subscribe() {
    let (_ws, host) = host_with_backend().await;
    let mut c = authorized(&host, "v2").await;
    subscribe(&mut c, "1").await;
    assert_eq!(users(&host).await, ["bootstrap:1"]);

    let status = host
        .trigger(&json!({"rooms": [{"target": "message", "customer": "1"}], "data": {"n": 1}}))
        .await;
    assert_eq!(status, 200);
    let publish = c.next().await;
    assert_eq!(
        (&publish["type"], &publish["data"]),
        (&json!("publish"), &json!({"n": 1})),
        "{publish}"
    );
    // Its rooms are still checked: customer 2 is not among them.
    let refused = c
        .subscribe(json!({"target": "message", "customer": "2"}), "2")
        .await;
    assert_eq!(refused["code"], "error", "{refused}");

    // A user id of another type refuses the client, and the log says why.
    let mut odd = Client::connect(&host.ws_url("odd")).await;
    assert_eq!(odd.next().await, json!({"is_authorized": false}));
    let why = "the user id at \"user.id\" is an object, not a string or an integer";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !host.log().contains(why) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {why:?} in the log:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn clients_the_backend_names_nobody_for_are_each_someone_of_their_own() {
    let (_ws, host) = host_with_backend().await;
    let mut first = authorized(&host, "anon").await;
    subscribe(&mut first, "1").await;
    let mut second = authorized(&host, "anon").await;
    subscribe(&mut second, "2").await;

    let users = users(&host).await;
    assert_eq!(users.len(), 2, "{users:?}");
    for user in &users {
        let random = user
            .strip_prefix("anonymous-")
            .unwrap_or_else(|| panic!("{user} is not marked anonymous"));
        assert!(
            random.len() == 16 && random.chars().all(|c| c.is_ascii_hexdigit()),
            "{user}"
        );
    }
    assert_ne!(users[0], users[1], "two clients share one user");
}
