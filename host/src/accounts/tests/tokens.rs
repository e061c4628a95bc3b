//! Access tokens, login through the service, failed-login limits, rooms
//! by role.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use ed25519_dalek::SigningKey;
use serde_json::json;

use crate::{
    accounts::{
        AccessTokenError, Accounts, FailureLimit, IP_FAILURE_LIMIT, LoginError, TokenKeys,
        USER_FAILURE_LIMIT, admin,
    },
    auth::roles::rooms_for,
    config::{AccountsConfig, RoleRooms},
};

fn keys(seed: u8) -> TokenKeys {
    TokenKeys::new(SigningKey::from_bytes(&[seed; 32]))
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

#[test]
fn an_access_token_verifies_with_its_key_only_and_until_it_expires() {
    let ours = keys(1);
    let token = ours.issue("alice", "s1", Duration::from_secs(60)).unwrap();
    assert!(ours.is_ours(&token));
    let claims = ours.verify(&token).unwrap();
    assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("alice", "s1"));
    assert_eq!(claims.exp - claims.iat, 60);

    let other = keys(2);
    assert!(!other.is_ours(&token));
    assert!(matches!(
        other.verify(&token),
        Err(AccessTokenError::Invalid(_))
    ));

    let expired = ours.issue("alice", "s1", Duration::ZERO).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(ours.verify(&expired), Err(AccessTokenError::Expired));

    // The signature covers the claims.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"iss":"modhost","sub":"root","sid":"s1","iat":1,"exp":99999999999,"jti":"x"}"#,
    );
    parts[1] = &forged;
    assert!(matches!(
        ours.verify(&parts.join(".")),
        Err(AccessTokenError::Invalid(_))
    ));
}

#[test]
fn failures_are_limited_per_key_for_a_window_in_bounded_memory() {
    let limit = FailureLimit::new(2, Duration::from_secs(60), 3);
    let t0 = Instant::now();
    assert!(limit.allowed("a", t0));
    limit.failed("a", t0);
    limit.failed("a", t0);
    assert!(!limit.allowed("a", t0));
    assert!(limit.allowed("b", t0), "other keys are not affected");
    assert!(
        limit.allowed("a", t0 + Duration::from_secs(61)),
        "the window passed"
    );

    limit.failed("b", t0);
    limit.failed("c", t0);
    limit.failed("d", t0);
    assert_eq!(limit.len(), 3);
    assert!(
        !limit.allowed("e", t0),
        "full: a new key is refused, not let in"
    );
    assert!(
        limit.allowed("e", t0 + Duration::from_secs(61)),
        "room again"
    );
}

#[test]
fn rooms_by_role_substitute_the_whole_user_value() {
    let table = vec![
        RoleRooms {
            name: "user".into(),
            allowed_rooms: vec![
                json!({"target": "notes", "user": "{user}"}),
                json!({"target": "message", "customer": "*"}),
            ],
        },
        RoleRooms {
            name: "admin".into(),
            allowed_rooms: vec![
                json!({"target": "*"}),
                json!({"target": "message", "customer": "*"}),
            ],
        },
    ];
    let rooms = rooms_for(&table, "account:alice", &["user".into(), "admin".into()]);
    assert_eq!(
        rooms,
        [
            json!({"target": "notes", "user": "account:alice"}),
            json!({"target": "message", "customer": "*"}),
            json!({"target": "*"}),
        ]
    );
    assert!(rooms_for(&table, "account:bob", &["guest".into()]).is_empty());
}

fn accounts(dir: &tempfile::TempDir) -> Accounts {
    let config = AccountsConfig {
        access_token_ttl: Duration::from_secs(60),
        ..AccountsConfig::default()
    };
    let accounts = Accounts::open(dir.path(), &config).unwrap();
    admin::add(
        accounts.store(),
        "alice",
        None,
        &["user".into()],
        Some("alice password"),
    )
    .unwrap();
    accounts
}

#[tokio::test]
async fn login_refresh_and_logout_through_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = accounts(&dir);
    let tokens = accounts
        .login("alice", "alice password", ip(1))
        .await
        .unwrap();
    assert_eq!(tokens.expires_in, 60);
    let who = accounts.check_access(&tokens.access_token).unwrap();
    assert_eq!(
        (who.name.as_str(), who.roles.as_slice()),
        ("alice", &["user".to_owned()][..])
    );

    let next = accounts
        .refresh(&tokens.refresh_token, ip(1))
        .await
        .unwrap();
    assert!(accounts.check_access(&next.access_token).is_ok());
    assert!(matches!(
        accounts.refresh(&tokens.refresh_token, ip(1)).await,
        Err(LoginError::Refused(_))
    ));
    // The reuse ended the session: its access tokens stop working too.
    assert!(accounts.check_access(&next.access_token).is_err());

    let again = accounts
        .login("alice", "alice password", ip(1))
        .await
        .unwrap();
    assert_eq!(
        accounts.logout(&again.refresh_token, ip(1)).await.unwrap(),
        "alice"
    );
    assert!(accounts.check_access(&again.access_token).is_err());
    assert!(accounts.logout(&again.refresh_token, ip(1)).await.is_err());

    let third = accounts
        .login("alice", "alice password", ip(1))
        .await
        .unwrap();
    accounts.store().set_disabled("cli", "alice", true).unwrap();
    assert!(accounts.check_access(&third.access_token).is_err());
    assert!(matches!(
        accounts.login("alice", "alice password", ip(1)).await,
        Err(LoginError::Refused(_))
    ));
}

#[tokio::test]
async fn wrong_passwords_are_limited_per_user_and_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = accounts(&dir);
    // Per user: from many addresses, then even the right password waits.
    for i in 0..USER_FAILURE_LIMIT {
        let refused = accounts.login("alice", "wrong", ip(i as u8)).await;
        assert!(
            matches!(refused, Err(LoginError::Refused(_))),
            "{refused:?}"
        );
    }
    assert!(matches!(
        accounts.login("alice", "alice password", ip(200)).await,
        Err(LoginError::RateLimited("user"))
    ));
    // Per address: names that do not exist count the same.
    for i in 0..IP_FAILURE_LIMIT {
        let refused = accounts.login(&format!("ghost{i}"), "wrong", ip(250)).await;
        assert!(
            matches!(refused, Err(LoginError::Refused(_))),
            "{refused:?}"
        );
    }
    assert!(matches!(
        accounts.login("bob", "anything", ip(250)).await,
        Err(LoginError::RateLimited("address"))
    ));
}
