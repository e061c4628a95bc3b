//! `[auth.accounts]` and `[[auth.roles]]` in config.toml: defaults,
//! bounds, and `{user}` only as a whole value.

use std::{path::Path, time::Duration};

use serde_json::json;

use crate::config::{self, ConfigError};

fn parse(extra: &str) -> Result<config::Config, ConfigError> {
    config::parse(extra, Path::new("/tmp/modhost-test/config.toml"))
}

#[test]
fn accounts_default_to_ten_minute_access_and_fourteen_day_refresh_tokens() {
    let config = parse("").unwrap();
    let accounts = &config.auth.accounts;
    assert_eq!(accounts.enabled, None);
    assert_eq!(accounts.access_token_ttl, Duration::from_secs(600));
    assert_eq!(
        accounts.refresh_token_ttl,
        Duration::from_secs(14 * 24 * 3600)
    );
    assert!(config.auth.roles.is_empty());

    let set = parse(
        "[auth.accounts]\nenabled = false\naccess_token_secs = 60\nrefresh_token_secs = 3600\n",
    )
    .unwrap();
    assert_eq!(set.auth.accounts.enabled, Some(false));
    assert_eq!(set.auth.accounts.access_token_ttl, Duration::from_secs(60));
    assert_eq!(
        set.auth.accounts.refresh_token_ttl,
        Duration::from_secs(3600)
    );
}

#[test]
fn token_lifetimes_are_bounded() {
    for bad in [
        "access_token_secs = 0",
        "access_token_secs = 86401",
        "access_token_secs = 600\nrefresh_token_secs = 599",
    ] {
        let err = parse(&format!("[auth.accounts]\n{bad}\n")).unwrap_err();
        assert!(err.to_string().contains("auth.accounts."), "{bad}: {err}");
    }
    let unknown = parse("[auth.accounts]\naccess_token_minutes = 5\n").unwrap_err();
    assert!(
        unknown.to_string().contains("access_token_minutes"),
        "{unknown}"
    );
}

#[test]
fn roles_list_rooms_with_user_as_a_whole_value() {
    let config = parse(
        "[[auth.roles]]\nname = \"user\"\nallowed_rooms = [{ target = \"notes\", user = \"{user}\" }]\n",
    )
    .unwrap();
    assert_eq!(config.auth.roles[0].name, "user");
    assert_eq!(
        config.auth.roles[0].allowed_rooms,
        [json!({"target": "notes", "user": "{user}"})]
    );

    let spliced = parse(
        "[[auth.roles]]\nname = \"user\"\nallowed_rooms = [{ target = \"notes\", user = \"team-{user}\" }]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        spliced.contains("auth.roles[0].allowed_rooms[0].user"),
        "{spliced}"
    );
    assert!(spliced.contains("must be the whole value"), "{spliced}");

    let twice = parse("[[auth.roles]]\nname = \"user\"\n[[auth.roles]]\nname = \"user\"\n")
        .unwrap_err()
        .to_string();
    assert!(twice.contains("listed twice"), "{twice}");
}

#[test]
fn a_reload_says_accounts_need_a_restart_and_roles_changed() {
    let old = parse("").unwrap();
    let new = parse(
        "[auth.accounts]\naccess_token_secs = 60\n[[auth.roles]]\nname = \"user\"\nallowed_rooms = [{ target = \"notes\", user = \"{user}\" }]\n",
    )
    .unwrap();
    assert_eq!(config::restart_required(&old, &new), ["auth.accounts"]);
    let changes = config::describe_changes(&old, &new);
    assert!(
        changes
            .iter()
            .any(|c| c == "auth.roles changed (0 → 1 roles)"),
        "{changes:?}"
    );
    assert!(config::restart_required(&old, &old).is_empty());
}

#[test]
fn unset_accounts_turn_on_when_the_store_holds_a_user_not_when_the_file_exists() {
    use crate::accounts::{Accounts, DB_FILE, Store};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let unset = parse("").unwrap().auth.accounts;
    let on = parse("[auth.accounts]\nenabled = true\n")
        .unwrap()
        .auth
        .accounts;
    let off = parse("[auth.accounts]\nenabled = false\n")
        .unwrap()
        .auth
        .accounts;

    assert!(!Accounts::wanted(&unset, &state));
    assert!(
        !state.join(DB_FILE).exists(),
        "looking made no store: {state:?}"
    );
    assert!(Accounts::wanted(&on, &state));

    // What the job launcher's first launch leaves: the file, no users.
    let store = Store::open_in(&state).unwrap();
    assert!(!Accounts::wanted(&unset, &state), "an empty store");
    assert!(Accounts::wanted(&on, &state));

    store.add_user("cli", "alice", None, None, &[]).unwrap();
    assert!(Accounts::wanted(&unset, &state), "a store with a user");
    // Closed, its WAL folded in and removed: read-only still reads it.
    drop(store);
    assert!(
        Accounts::wanted(&unset, &state),
        "a closed store with a user"
    );
    assert!(!Accounts::wanted(&off, &state), "false wins over users");
}

#[test]
fn a_store_cut_short_before_its_tables_holds_no_users() {
    use crate::accounts::{Accounts, DB_FILE};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), b"").unwrap();
    assert!(!Accounts::wanted(
        &parse("").unwrap().auth.accounts,
        dir.path()
    ));
}
