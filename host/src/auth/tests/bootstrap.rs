//! Bootstrap against a real HTTP server on 127.0.0.1:0.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect},
    routing::get,
};
use serde_json::json;

use super::{jwt_config, static_token};
use crate::auth::{ANONYMOUS_PREFIX, AuthError, AuthSetupError, Authenticator, Credentials};
use crate::config::{AuthConfig, BootstrapConfig, JsonPath};

/// The headers of every request the backend received.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

struct Backend {
    addr: SocketAddr,
    seen: Seen,
    /// Requests `/slow-body/` received.
    slow_body_hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl Backend {
    async fn start() -> Backend {
        let seen: Seen = Arc::default();
        let record = |seen: &Seen| {
            let seen = seen.clone();
            move |headers: HeaderMap| {
                seen.lock().unwrap().push(headers);
                std::future::ready(())
            }
        };
        let ok = record(&seen);
        let slow_body_hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hits = slow_body_hits.clone();
        let app = Router::new()
            .route(
                "/ok/",
                get(move |h: HeaderMap| async move {
                    ok(h).await;
                    axum::Json(json!({
                        "allowed_rooms": [{"target": "message", "customer": "*"}],
                        "user": "alice",
                        "roles": ["admin"],
                    }))
                }),
            )
            .route("/empty/", get(|| async { axum::Json(json!({})) }))
            .route(
                "/numeric-user/",
                get(|| async { axum::Json(json!({"user": 42})) }),
            )
            .route(
                "/v2/",
                get(|| async {
                    axum::Json(json!({"user": {"id": 1}, "allowed_rooms": [{"target": "message"}]}))
                }),
            )
            .route(
                "/nested/",
                get(|| async {
                    axum::Json(json!({"data": {"user": {"pk": "p-7", "roles": ["staff"]}}}))
                }),
            )
            .route("/forbidden/", get(|| async { StatusCode::FORBIDDEN }))
            .route("/redirect/", get(|| async { Redirect::temporary("/ok/") }))
            .route(
                "/bad-rooms/",
                get(|| async { axum::Json(json!({"allowed_rooms": ["foo"]})) }),
            )
            .route(
                "/null-rooms/",
                get(|| async { axum::Json(json!({"allowed_rooms": null})) }),
            )
            .route(
                "/bad-roles/",
                get(|| async { axum::Json(json!({"allowed_rooms": [], "roles": "admin"})) }),
            )
            .route("/not-json/", get(|| async { "<html>login</html>" }))
            .route("/big/", get(|| async { "x".repeat(100 * 1024) }))
            .route(
                "/slow/",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    axum::Json(json!({}))
                }),
            )
            .route(
                "/slow-body/",
                get(move || async move {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // Headers now, the body never: the timeout must still fire.
                    let stream = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        axum::body::Body::from_stream(stream),
                    )
                        .into_response()
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Backend {
            addr,
            seen,
            slow_body_hits,
        }
    }

    /// Generous: a busy machine must not time out a backend that answers.
    fn auth(&self, path: &str) -> Authenticator {
        self.auth_with_timeout(path, Duration::from_secs(60))
    }

    fn auth_with_timeout(&self, path: &str, timeout: Duration) -> Authenticator {
        Authenticator::new(&AuthConfig {
            bootstrap: Some(bootstrap_config(
                format!("http://{}{path}", self.addr),
                timeout,
            )),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn requests(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

/// `[auth.bootstrap]` at `url` with the default reply paths.
fn bootstrap_config(url: impl Into<String>, timeout: Duration) -> BootstrapConfig {
    BootstrapConfig {
        url: url.into(),
        timeout,
        user_id_path: None,
        roles_path: JsonPath::parse("roles").unwrap(),
    }
}

fn request_headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn forwards_headers_and_query_token_as_token_authorization() {
    let backend = Backend::start().await;
    let auth = backend.auth("/ok/");
    let h = request_headers(&[
        ("cookie", "sessionid=s3ss; csrftoken=csrf123"),
        ("user-agent", "Mozilla/5.0 test"),
        ("x-real-ip", "203.0.113.5"),
        ("host", "public.example"),
    ]);
    let creds =
        Credentials::from_request(&h, Some("token=t"), Some("127.0.0.1:5555".parse().unwrap()));

    let p = auth.authenticate(&creds).await.unwrap();
    assert_eq!(p.user, "bootstrap:alice");
    assert_eq!(p.roles, ["admin"]);
    assert_eq!(
        p.allowed_rooms,
        [json!({"target": "message", "customer": "*"})]
    );

    let seen = backend.requests();
    assert_eq!(seen.len(), 1, "exactly one request, no retry");
    let got = &seen[0];
    assert_eq!(header(got, "authorization"), Some("Token t"));
    assert_eq!(
        header(got, "cookie"),
        Some("sessionid=s3ss; csrftoken=csrf123")
    );
    assert_eq!(header(got, "x-csrftoken"), Some("csrf123"));
    assert_eq!(header(got, "user-agent"), Some("Mozilla/5.0 test"));
    assert_eq!(header(got, "x-real-ip"), Some("203.0.113.5"));
    // The client's Host is not forwarded (high-templar 3.x).
    assert_ne!(header(got, "host"), Some("public.example"));
}

#[tokio::test]
async fn forwards_original_authorization_and_peer_ip() {
    let backend = Backend::start().await;
    let auth = backend.auth("/ok/");
    let h = request_headers(&[("authorization", "Bearer opaque-session-token")]);
    let creds = Credentials::from_request(&h, None, Some("198.51.100.4:1234".parse().unwrap()));
    auth.authenticate(&creds).await.unwrap();

    let got = &backend.requests()[0];
    assert_eq!(
        header(got, "authorization"),
        Some("Bearer opaque-session-token")
    );
    assert_eq!(header(got, "x-real-ip"), Some("198.51.100.4"));
    assert_eq!(header(got, "x-csrftoken"), None);
    assert_eq!(header(got, "cookie"), None);
}

#[tokio::test]
async fn called_without_any_credentials() {
    // The backend may allow anonymous users: it decides, not us.
    let backend = Backend::start().await;
    let p = backend
        .auth("/empty/")
        .authenticate(&Credentials::none())
        .await
        .unwrap();
    assert!(p.user.starts_with(ANONYMOUS_PREFIX), "{}", p.user);
    assert!(p.roles.is_empty());
    assert!(p.allowed_rooms.is_empty());

    let p = backend
        .auth("/numeric-user/")
        .authenticate(&Credentials::none())
        .await
        .unwrap();
    assert_eq!(p.user, "bootstrap:42");
}

#[tokio::test]
async fn reply_paths_from_the_config_are_followed() {
    let backend = Backend::start().await;
    // Unset paths read high-templar 2.x's user object.
    let p = backend
        .auth("/v2/")
        .authenticate(&Credentials::none())
        .await
        .unwrap();
    assert_eq!(p.user, "bootstrap:1");
    assert_eq!(p.allowed_rooms, [json!({"target": "message"})]);

    let auth = Authenticator::new(&AuthConfig {
        bootstrap: Some(BootstrapConfig {
            user_id_path: Some(JsonPath::parse("data.user.pk").unwrap()),
            roles_path: JsonPath::parse("data.user.roles").unwrap(),
            ..bootstrap_config(
                format!("http://{}/nested/", backend.addr),
                Duration::from_secs(60),
            )
        }),
        ..AuthConfig::default()
    })
    .unwrap();
    let p = auth.authenticate(&Credentials::none()).await.unwrap();
    assert_eq!(
        (p.user.as_str(), p.roles),
        ("bootstrap:p-7", vec!["staff".to_owned()])
    );
}

#[tokio::test]
async fn non_200_refuses() {
    let backend = Backend::start().await;
    let err = backend
        .auth("/forbidden/")
        .authenticate(&Credentials::bearer("t"))
        .await;
    assert!(
        matches!(err, Err(AuthError::BootstrapRefused { status: 403 })),
        "{err:?}"
    );

    // Redirects are not followed (they would carry the client's cookies).
    let err = backend
        .auth("/redirect/")
        .authenticate(&Credentials::bearer("t"))
        .await;
    assert!(
        matches!(err, Err(AuthError::BootstrapRefused { status: 307 })),
        "{err:?}"
    );
    assert!(backend.requests().is_empty(), "/ok/ never reached");
}

#[tokio::test]
async fn unusable_replies_refuse() {
    let backend = Backend::start().await;
    for path in [
        "/bad-rooms/",
        "/null-rooms/",
        "/bad-roles/",
        "/not-json/",
        "/big/",
    ] {
        let err = backend
            .auth(path)
            .authenticate(&Credentials::bearer("t"))
            .await;
        match err {
            Err(e @ AuthError::BootstrapBadReply(_)) => assert!(e.is_upstream_failure()),
            other => panic!("{path}: expected BootstrapBadReply, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn slow_backend_times_out() {
    let backend = Backend::start().await;
    for path in ["/slow/", "/slow-body/"] {
        let auth = backend.auth_with_timeout(path, Duration::from_millis(200));
        let started = Instant::now();
        let err = auth.authenticate(&Credentials::bearer("t")).await;
        // Without the timeout `/slow/` would answer (a bad reply) and
        // `/slow-body/` never: only the timeout gives this error.
        assert!(
            matches!(err, Err(AuthError::BootstrapTimeout)),
            "{path}: {err:?}"
        );
        eprintln!("{path}: timed out after {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn slow_backend_does_not_block_other_clients() {
    let backend = Backend::start().await;
    // A body that never comes and a timeout no machine reaches here: the
    // slow check is still waiting whenever the fast one is answered, unless
    // the fast one queued behind it.
    let slow = backend.auth_with_timeout("/slow-body/", Duration::from_secs(300));
    let fast = backend.auth("/ok/");
    let slow_check =
        tokio::spawn(async move { slow.authenticate(&Credentials::bearer("a")).await });
    // Let the slow check reach the backend first.
    while backend
        .slow_body_hits
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fast.authenticate(&Credentials::bearer("b")).await.unwrap();
    assert!(
        !slow_check.is_finished(),
        "the fast check waited for the slow one"
    );
    slow_check.abort();
}

#[tokio::test]
async fn unreachable_backend() {
    // Bind and drop a listener to get a port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let auth = Authenticator::new(&AuthConfig {
        bootstrap: Some(bootstrap_config(
            format!("http://{addr}/bootstrap/"),
            Duration::from_secs(2),
        )),
        ..AuthConfig::default()
    })
    .unwrap();
    let err = auth
        .authenticate(&Credentials::bearer("t"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::BootstrapUnreachable(_)), "{err:?}");
    assert!(err.is_upstream_failure());
}

#[tokio::test]
async fn earlier_modes_decide_before_bootstrap() {
    let backend = Backend::start().await;
    let auth = Authenticator::new(&AuthConfig {
        tokens: vec![static_token("static-tok", "svc", &[])],
        jwt: Some(jwt_config(Some("secret"))),
        bootstrap: Some(bootstrap_config(
            format!("http://{}/ok/", backend.addr),
            Duration::from_secs(5),
        )),
        ..AuthConfig::default()
    })
    .unwrap();

    assert_eq!(
        auth.authenticate(&Credentials::bearer("static-tok"))
            .await
            .unwrap()
            .user,
        "svc"
    );
    // An invalid JWT is refused by the JWT mode, not passed on.
    assert!(matches!(
        auth.authenticate(&Credentials::bearer("aaaa.bbbb.cccc"))
            .await,
        Err(AuthError::JwtInvalid(_))
    ));
    assert!(backend.requests().is_empty());

    // Anything else goes to the backend.
    assert_eq!(
        auth.authenticate(&Credentials::bearer("opaque"))
            .await
            .unwrap()
            .user,
        "bootstrap:alice"
    );
    assert_eq!(backend.requests().len(), 1);
}

#[test]
fn bootstrap_setup_errors() {
    for url in [
        "https://api.example/bootstrap/",
        "not a url",
        "unix:/tmp/sock",
    ] {
        let err = Authenticator::new(&AuthConfig {
            bootstrap: Some(bootstrap_config(url, Duration::from_secs(1))),
            ..AuthConfig::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, AuthSetupError::BootstrapUrl { .. }),
            "{url}: {err:?}"
        );
    }
}
