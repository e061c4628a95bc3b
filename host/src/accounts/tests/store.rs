//! The store: schema versions, users, sessions and refresh tokens, audit.

use crate::accounts::{
    RefreshRefused, Store, StoreError, admin, hash, name_problem, passwords::Passwords,
};

fn roles(list: &[&str]) -> Vec<String> {
    list.iter().map(|r| (*r).to_owned()).collect()
}

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(&dir.path().join("state")).unwrap();
    (dir, store)
}

#[test]
fn a_new_store_is_at_the_newest_schema_and_reopens_with_its_users() {
    let (dir, store) = fresh();
    assert_eq!(store.schema_version().unwrap(), 2);
    store
        .add_user("cli", "alice", None, None, &roles(&["user"]))
        .unwrap();
    drop(store);
    let again = Store::open_in(&dir.path().join("state")).unwrap();
    assert_eq!(
        again.user("alice").unwrap().unwrap().roles,
        roles(&["user"])
    );
    let mode = std::fs::metadata(again.path()).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0);
}

#[test]
fn a_store_from_a_newer_host_is_refused() {
    let (dir, store) = fresh();
    let path = store.path().to_owned();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open_in(&dir.path().join("state")).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn users_are_added_once_changed_and_audited() {
    let (_dir, store) = fresh();
    store
        .add_user("cli", "bob", Some("bob@example.com"), None, &[])
        .unwrap();
    let again = store.add_user("cli", "bob", None, None, &[]).unwrap_err();
    assert!(matches!(again, StoreError::UserExists(_)), "{again}");

    let bob = store
        .change_roles(
            "cli",
            "bob",
            &roles(&["user", "editor"]),
            &roles(&["editor"]),
        )
        .unwrap();
    assert_eq!(bob.roles, roles(&["user"]));
    let bob = store.set_disabled("cli", "bob", true).unwrap();
    assert!(!bob.enabled());
    assert!(store.set_disabled("cli", "bob", false).unwrap().enabled());
    let missing = store.set_disabled("cli", "nobody", true).unwrap_err();
    assert!(matches!(missing, StoreError::NoSuchUser(_)), "{missing}");

    let actions: Vec<String> = store
        .audit_log(10)
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["user_add", "user_roles", "user_disable", "user_enable"]
    );
    assert_eq!(store.changed_since(0).unwrap().len(), 1);
    assert_eq!(store.users().unwrap().len(), 1);
}

#[test]
fn user_names_are_plain_ascii_of_bounded_length() {
    assert_eq!(name_problem("alice.smith@example-1_x"), None);
    for bad in ["", "a b", "{user}", "ali\u{e7}e", "a:b", &"x".repeat(65)] {
        assert!(name_problem(bad).is_some(), "{bad:?} accepted");
    }
    let (_dir, store) = fresh();
    assert!(matches!(
        admin::add(&store, "no spaces", None, &[], None),
        Err(admin::AdminError::Name(_))
    ));
}

#[test]
fn a_refresh_token_works_once_and_a_reused_one_ends_its_session() {
    let (_dir, store) = fresh();
    let alice = store.add_user("cli", "alice", None, None, &[]).unwrap();
    store.start_session("ip", &alice, "s1", "r1", 60).unwrap();
    assert!(store.session_open("s1").unwrap());

    let of = store.rotate_refresh("ip", "r1", "r2", 60).unwrap().unwrap();
    assert_eq!(
        (of.session.as_str(), of.user.name.as_str()),
        ("s1", "alice")
    );
    // r1 again: someone else holds it too; the session ends for both.
    assert_eq!(
        store.rotate_refresh("ip", "r1", "r3", 60).unwrap(),
        Err(RefreshRefused::Reused)
    );
    assert!(!store.session_open("s1").unwrap());
    assert_eq!(
        store.rotate_refresh("ip", "r2", "r4", 60).unwrap(),
        Err(RefreshRefused::SessionEnded)
    );
    assert_eq!(
        store.rotate_refresh("ip", "never", "r5", 60).unwrap(),
        Err(RefreshRefused::Unknown)
    );
}

#[test]
fn an_expired_refresh_token_is_refused_and_pruned() {
    let (_dir, store) = fresh();
    let alice = store.add_user("cli", "alice", None, None, &[]).unwrap();
    store.start_session("ip", &alice, "s1", "old", -1).unwrap();
    assert_eq!(
        store.rotate_refresh("ip", "old", "new", 60).unwrap(),
        Err(RefreshRefused::Expired)
    );
    assert_eq!(store.prune().unwrap(), 2, "the token and its empty session");
    assert!(!store.session_open("s1").unwrap());
}

#[test]
fn logout_disable_and_a_new_password_end_sessions() {
    let (_dir, store) = fresh();
    let alice = store.add_user("cli", "alice", None, None, &[]).unwrap();
    store.start_session("ip", &alice, "s1", "r1", 60).unwrap();
    store.start_session("ip", &alice, "s2", "r2", 60).unwrap();
    store.start_session("ip", &alice, "s3", "r3", 60).unwrap();

    assert_eq!(
        store.end_session_of("ip", "r1").unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(
        store.end_session_of("ip", "r1").unwrap(),
        None,
        "already ended"
    );
    assert!(!store.session_open("s1").unwrap());
    assert!(store.session_open("s2").unwrap());

    store.set_disabled("cli", "alice", true).unwrap();
    assert!(!store.session_open("s2").unwrap());
    assert_eq!(
        store.rotate_refresh("ip", "r3", "r4", 60).unwrap(),
        Err(RefreshRefused::SessionEnded)
    );

    store.set_disabled("cli", "alice", false).unwrap();
    store.start_session("ip", &alice, "s5", "r5", 60).unwrap();
    store
        .set_password_hash("cli", "alice", &hash("a new password").unwrap())
        .unwrap();
    assert!(!store.session_open("s5").unwrap());
}

#[test]
fn the_file_holds_argon2id_hashes_never_the_password() {
    let (dir, store) = fresh();
    let password = "correct horse battery staple";
    admin::add(&store, "alice", None, &[], Some(password)).unwrap();
    admin::create_admin(&dir.path().join("state"), "root", "another s3cret pw").unwrap();
    let (_, stored) = store.user_with_hash("alice").unwrap().unwrap();
    let stored = stored.unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );

    let passwords = Passwords::new().unwrap();
    assert!(passwords.verify(password, Some(&stored)));
    assert!(!passwords.verify("wrong", Some(&stored)));
    assert!(!passwords.verify(password, None));

    // Every file of the store (the WAL too): no password in any of them,
    // and none readable by others.
    for entry in std::fs::read_dir(dir.path().join("state")).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
            0,
            "{} is open to others",
            path.display()
        );
        let bytes = std::fs::read(&path).unwrap();
        for secret in [password, "another s3cret pw"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a password is in the store's files"
            );
        }
    }
}

#[test]
fn create_admin_makes_the_user_once_and_leaves_an_existing_one() {
    let (dir, store) = fresh();
    let state = dir.path().join("state");
    assert!(admin::create_admin(&state, "root", "first password").unwrap());
    assert!(!admin::create_admin(&state, "root", "second password").unwrap());
    let (root, hash) = store.user_with_hash("root").unwrap().unwrap();
    assert_eq!(root.roles, roles(&["admin"]));
    let passwords = Passwords::new().unwrap();
    assert!(passwords.verify("first password", hash.as_deref()));
    assert!(matches!(
        admin::create_admin(&state, "root2", "short"),
        Err(admin::AdminError::Password(_))
    ));
}

#[test]
fn a_password_is_the_first_line_of_stdin() {
    let mut input: &[u8] = b"s3cret pass\r\nignored\n";
    assert_eq!(admin::read_password(&mut input).unwrap(), "s3cret pass");
    let mut empty: &[u8] = b"\n";
    assert!(admin::read_password(&mut empty).is_err());
}
