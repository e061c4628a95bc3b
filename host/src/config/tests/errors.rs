//! Refused configs: each error's kind, line, message and hint.

use super::*;

#[test]
fn module_names_and_reserved_keys() {
    invalid_at("[modules.Notes]\nx = 1\n", 1, "not a module name");
    let long = "a".repeat(65);
    invalid_at(&format!("\n[modules.{long}]\n"), 2, "not a module name");
    // A reserved key written as a module table.
    let (e, shown) = err("[modules.dir]\nx = 1\n");
    assert!(matches!(e, ConfigError::Type(_)), "{shown}");
    assert!(shown.contains("cannot be a module name"), "{shown}");
    assert_eq!(e.line(), Some(1), "{shown}");
    // A typo of a setting is an unknown key, with a suggestion.
    let (e, shown) = err("[modules]\n\ndri = \"plugins\"\n");
    assert!(matches!(e, ConfigError::UnknownKey(_)), "{shown}");
    assert_eq!(e.line(), Some(3), "{shown}");
    assert!(shown.contains("did you mean `dir`?"), "{shown}");
    assert!(shown.contains("[modules.dri]"), "{shown}");
    // Host keys are type-checked on their own line.
    let (e, shown) = err("[modules.notes]\nx = 1\nenabled = \"yes\"\n");
    assert!(
        matches!(e, ConfigError::Type(_)) && e.line() == Some(3),
        "{shown}"
    );
    // A host key of the wrong type says what the key is for.
    assert!(
        shown.contains("`enabled`: false keeps the module from loading"),
        "{shown}"
    );
    let (_, shown) = err("[modules.notes]\ncall_timeout_ms = true\n");
    assert!(
        shown.contains("`call_timeout_ms`: this module's call timeout"),
        "{shown}"
    );
    let (_, shown) = err("[limits]\nsend_queue = [1]\n");
    assert!(
        shown.contains("`send_queue`: per-connection outbox"),
        "{shown}"
    );
    invalid_at("[modules.notes]\ncall_timeout_ms = 0\n", 2, "too small");
    invalid_at(
        "[modules.notes]\ncall_timeout_ms = 3600001\n",
        2,
        "too large",
    );
    invalid_at("[modules.notes]\nx = { y = nan }\n", 2, "no JSON form");
    invalid_at(
        "[modules.notes]\npublishes_per_second = 0\n",
        2,
        "too small",
    );
    invalid_at(
        "[modules.notes]\npublishes_per_second = 10000001\n",
        2,
        "too large",
    );
    let (e, shown) = err("[modules.notes]\npublishes_per_second = \"5\"\n");
    assert!(
        matches!(e, ConfigError::Type(_)) && e.line() == Some(2),
        "{shown}"
    );
}

#[test]
fn unknown_keys_name_the_table_and_suggest() {
    let (e, shown) = err("[server]\nlisen = \"127.0.0.1:8080\"\n");
    assert!(matches!(e, ConfigError::UnknownKey(_)), "{shown}");
    assert_eq!(e.line(), Some(2), "{shown}");
    // The list goes on as [server] grows; its start is what matters here.
    assert!(
        shown.starts_with(
            "/srv/modhost/config.toml:2:1: unknown key `lisen` in [server]\nhint: did you mean `listen`? keys allowed in [server]: listen, idle_timeout_secs, resume_grace_secs"
        ),
        "{shown}"
    );
    // Top level, nested tables and array-of-tables entries.
    let (_, shown) = err("[srever]\n");
    assert!(
        shown.contains("unknown key `srever` in the top level")
            && shown.contains("did you mean `server`?"),
        "{shown}"
    );
    let (e, shown) = err(
        "[[auth.tokens]]\ntoken = \"a\"\nuser = \"u\"\n[[auth.tokens]]\ntoken = \"b\"\nuser = \"v\"\nrole = [\"x\"]\n",
    );
    assert_eq!(e.line(), Some(7), "{shown}");
    assert!(
        shown.contains("in [[auth.tokens]] entry 2") && shown.contains("did you mean `roles`?"),
        "{shown}"
    );
    let (e, shown) = err("[auth.jwt]\nsecret = \"x\"\nleeway = 3\n");
    assert_eq!(e.line(), Some(3), "{shown}");
    assert!(
        shown.contains("in [auth.jwt]") && shown.contains("leeway_secs"),
        "{shown}"
    );
    // Far from everything: no guess, but the list.
    let (_, shown) = err("[limits]\nfoo = 1\n");
    assert!(
        !shown.contains("did you mean") && shown.contains("send_queue"),
        "{shown}"
    );
}

#[test]
fn syntax_and_type_errors_have_lines() {
    let (e, shown) = err("[server]\nlisten = 127.0.0.1:8080\n");
    assert!(matches!(e, ConfigError::Syntax(_)), "{shown}");
    assert_eq!(e.line(), Some(2), "{shown}");
    assert!(
        shown.contains("hint: if this is text, put it in quotes: listen = \"127.0.0.1:8080\""),
        "{shown}"
    );
    let (e, shown) = err("a = 1\n[server]\n[server]\n");
    assert!(
        matches!(e, ConfigError::Syntax(_)) && e.line() == Some(3),
        "{shown}"
    );
    assert!(shown.contains("duplicate key `server`"), "{shown}");
    let (e, shown) = err("[server]\n\nlisten = 8080\n");
    assert!(matches!(e, ConfigError::Type(_)), "{shown}");
    assert_eq!(e.line(), Some(3), "{shown}");
    assert!(shown.contains("server.listen"), "{shown}");
    let (e, shown) = err("[limits]\nsend_queue = -1\n");
    assert!(
        matches!(e, ConfigError::Type(_)) && e.line() == Some(2),
        "{shown}"
    );
    assert!(shown.contains("cannot be negative"), "{shown}");
    let (e, shown) = err("[[auth.tokens]]\ntoken = \"a\"\n");
    assert!(
        matches!(e, ConfigError::Type(_)) && shown.contains("missing field `user`"),
        "{shown}"
    );
    assert_eq!(e.line(), Some(1), "{shown}");
}

#[test]
fn listen_must_be_a_socket_address() {
    invalid_at(
        "[server]\nlisten = \"localhost:8080\"\n",
        2,
        "not a socket address",
    );
    let shown = invalid_at(
        "[server]\nlisten = \"127.0.0.1\"\n",
        2,
        "not a socket address",
    );
    assert!(shown.contains("add a port"), "{shown}");
    assert_eq!(
        ok("[server]\nlisten = \"[::1]:80\"\n").server.listen.port(),
        80
    );
}

#[test]
fn gateway_status_is_one_of_three_words() {
    let shown = invalid_at(
        "[gateway]\nstatus = \"all\"\n",
        2,
        "is not one of \"everyone\", \"admins\", \"off\"",
    );
    assert!(
        shown.contains("who may ask for the host's counters"),
        "{shown}"
    );
    assert_eq!(ok("").gateway.status, StatusAccess::Everyone);
    assert_eq!(
        ok("[gateway]\nstatus = \"off\"\n").gateway.status,
        StatusAccess::Off
    );
}

#[test]
fn limits_refuse_zero_and_absurd_values() {
    invalid_at("[limits]\nmax_frame_bytes = 255\n", 2, "at least 256");
    invalid_at("[limits]\nmax_frame_bytes = 67108865\n", 2, "too large");
    invalid_at("[limits]\n\nsend_queue = 0\n", 3, "send_queue = 0");
    invalid_at("[limits]\ncalls_per_second = 0\n", 2, "too small");
    invalid_at("[limits]\ncall_timeout_ms = 0\n", 2, "too small");
    invalid_at("[limits]\ncall_timeout_ms = 3600001\n", 2, "too large");
    invalid_at("[limits]\nmax_json_depth = 0\n", 2, "too small");
    invalid_at("[limits]\nmax_json_depth = 513\n", 2, "too large");
    invalid_at("[server]\nidle_timeout_secs = 0\n", 2, "too small");
    let c = ok(
        "[limits]\nmax_frame_bytes = 67108864\nmax_json_depth = 512\ncall_timeout_ms = 3600000\n",
    );
    assert_eq!(c.limits.max_frame_bytes, 64 * 1024 * 1024);
}

#[test]
fn tokens_must_be_non_empty_and_unique() {
    invalid_at("[admin]\ntoken = \"\"\n", 2, "admin.token is empty");
    invalid_at(
        "[[auth.tokens]]\ntoken = \"\"\nuser = \"a\"\n",
        2,
        "auth.tokens[0].token is empty",
    );
    invalid_at(
        "[[auth.tokens]]\ntoken = \"x\"\nuser = \"\"\n",
        3,
        "user is empty",
    );
    invalid_at(
        "[trigger]\ntokens = [\"a\", \"\"]\n",
        2,
        "trigger.tokens[1] is empty",
    );
    invalid_at("[trigger]\ntokens = [\"a\", \"a\"]\n", 2, "repeats");
    invalid_at("[auth.jwt]\nsecret = \"\"\n", 2, "secret is empty");
    invalid_at("[admin]\ntoken = \" padded \"\n", 2, "whitespace");
    let shown = invalid_at(
        "[[auth.tokens]]\ntoken = \"same\"\nuser = \"a\"\n\n[[auth.tokens]]\ntoken = \"same\"\nuser = \"b\"\n",
        6,
        "same secret as auth.tokens[0].token",
    );
    assert!(!shown.contains("\"same\""), "a secret leaked into: {shown}");
}

#[test]
fn auth_sources_are_checked() {
    invalid_at(
        "[auth]\nbootstrap_url = \"ftp://x\"\n",
        2,
        "not an http(s) URL",
    );
    invalid_at(
        "[auth.bootstrap]\nurl = \"http://\"\n",
        2,
        "not an http(s) URL",
    );
    invalid_at(
        "[auth]\nbootstrap_url = \"http://a/\"\n[auth.bootstrap]\nurl = \"http://b/\"\n",
        2,
        "both set",
    );
    invalid_at(
        "[auth]\n[auth.jwt]\nissuer = \"x\"\n",
        2,
        "neither secret nor jwks_file",
    );
    invalid_at(
        "[auth.jwt]\nsecret = \"x\"\nleeway_secs = 3601\n",
        3,
        "too large",
    );
}

#[test]
fn bootstrap_reply_paths_are_checked() {
    let url = "[auth.bootstrap]\nurl = \"http://127.0.0.1:8000/b/\"\n";
    let shown = invalid_at(
        &format!("{url}user_id_path = \"user..id\"\n"),
        3,
        "auth.bootstrap.user_id_path = \"user..id\" is not a usable path: segment 2 is empty",
    );
    assert!(
        shown.contains("hint: name the reply's keys from its top level down, separated by dots: user_id_path = \"user.id\""),
        "{shown}"
    );
    invalid_at(
        &format!("{url}user_id_path = \"\"\n"),
        3,
        "the path is empty",
    );
    invalid_at(
        &format!("{url}user_id_path = \".id\"\n"),
        3,
        "segment 1 is empty",
    );
    invalid_at(
        &format!("{url}user_id_path = \"user id\"\n"),
        3,
        "whitespace",
    );
    let shown = invalid_at(
        &format!("{url}roles_path = \"user.roles.\"\n"),
        3,
        "auth.bootstrap.roles_path = \"user.roles.\" is not a usable path: segment 3 is empty",
    );
    assert!(shown.contains("roles_path = \"user.roles\""), "{shown}");
    // A pasted document is not quoted back in full.
    let long = "a.".repeat(200) + "a";
    let shown = invalid_at(
        &format!("{url}user_id_path = \"{long}\"\n"),
        3,
        "more than 256",
    );
    assert!(!shown.contains(&long), "{shown}");
    invalid_at(
        &format!("{url}user_id_path = \"{}\"\n", vec!["k"; 17].join(".")),
        3,
        "17 segments, more than 16",
    );
    // A value of the wrong type is a type error on its line.
    let (e, shown) = err(&format!("{url}\nroles_path = [\"roles\"]\n"));
    assert!(
        matches!(e, ConfigError::Type(_)) && e.line() == Some(4),
        "{shown}"
    );
    // A misspelt key is unknown, with the right one suggested.
    let (e, shown) = err(&format!("{url}user_id_pth = \"id\"\n"));
    assert!(
        matches!(e, ConfigError::UnknownKey(_)) && e.line() == Some(3),
        "{shown}"
    );
    assert!(shown.contains("did you mean `user_id_path`?"), "{shown}");
}

#[test]
fn allowed_rooms_are_objects_of_plain_values() {
    let (e, shown) = err(
        "[[auth.tokens]]\ntoken = \"x\"\nuser = \"a\"\nallowed_rooms = [\n  { a = 1 },\n  \"room\",\n]\n",
    );
    assert!(
        matches!(e, ConfigError::Type(_)) && e.line() == Some(6),
        "{shown}"
    );
    assert!(
        shown.contains("allowed_rooms[1] is a string, not a room"),
        "{shown}"
    );
    let (e, shown) =
        err("[[auth.tokens]]\ntoken = \"x\"\nuser = \"a\"\nallowed_rooms = [{ a = [1] }]\n");
    assert!(
        matches!(e, ConfigError::Type(_)) && e.line() == Some(4),
        "{shown}"
    );
    assert!(shown.contains("strings, numbers or booleans"), "{shown}");
    let (_, shown) =
        err("[[auth.tokens]]\ntoken = \"x\"\nuser = \"a\"\nallowed_rooms = [{ a = { b = 1 } }]\n");
    assert!(
        shown.contains("auth.tokens[0].allowed_rooms[0].a is a table"),
        "{shown}"
    );
}

#[test]
fn echo_path_must_be_its_own_path() {
    invalid_at("[diagnostics]\nws_echo_path = \"echo\"\n", 2, "not a path");
    invalid_at("[diagnostics]\nws_echo_path = \"/ws/\"\n", 2, "shadow");
    invalid_at("[diagnostics]\nws_echo_path = \"/api/echo\"\n", 2, "shadow");
}

#[test]
fn the_placeholder_admin_token_is_refused_off_loopback() {
    assert_eq!(
        ok("[admin]\ntoken = \"change-me\"\n")
            .admin
            .token
            .as_deref(),
        Some("change-me")
    );
    ok("[server]\nlisten = \"[::1]:8080\"\n[admin]\ntoken = \"change-me\"\n");
    let shown = invalid_at(
        "[server]\nlisten = \"0.0.0.0:8080\"\n[admin]\ntoken = \"change-me\"\n",
        4,
        "placeholder",
    );
    assert!(shown.contains("openssl rand"), "{shown}");
    ok("[server]\nlisten = \"0.0.0.0:8080\"\n[admin]\ntoken = \"a-real-secret\"\n");
}

#[test]
fn every_published_demo_secret_is_refused_off_loopback() {
    let cases = [
        ("[admin]\ntoken = \"admin-secret\"\n", 4, "admin.token"),
        (
            "[[auth.tokens]]\ntoken = \"alice-secret\"\nuser = \"a\"\n",
            4,
            "auth.tokens[0].token",
        ),
        (
            "[[auth.tokens]]\ntoken = \"fine-1\"\nuser = \"a\"\n[[auth.tokens]]\ntoken = \"admin-secret\"\nuser = \"b\"\n",
            7,
            "auth.tokens[1].token",
        ),
        (
            "[trigger]\ntokens = [\"t-ok\", \"trigger-secret\"]\n",
            4,
            "trigger.tokens[1]",
        ),
    ];
    for (tables, line, key) in cases {
        // Loopback: the quickstart runs on them.
        ok(tables);
        let public = format!("[server]\nlisten = \"0.0.0.0:0\"\n{tables}");
        let shown = invalid_at(&public, line, "published demo secrets");
        assert!(shown.contains(key), "{key} not named: {shown}");
        assert!(shown.contains("openssl rand"), "{shown}");
        ok(&public.replace("-secret\"", "-Zq81rT\""));
    }
}

#[test]
fn the_shipped_config_refuses_to_listen_publicly() {
    let text = crate::config::EMBEDDED.replace("127.0.0.1:8080", "0.0.0.0:8080");
    let line = text
        .lines()
        .position(|l| l == "token = \"change-me\"")
        .expect("the shipped admin token")
        + 1;
    invalid_at(&text, line, "change-me");
}

#[test]
fn a_reload_is_checked_against_the_running_listen_address() {
    // The file listens on loopback, so it parses; but the running host
    // keeps its public address until a restart.
    let mut c = ok("[trigger]\ntokens = [\"trigger-secret\"]\n");
    assert_eq!(crate::config::published_secret_error(&c), None);
    c.server.listen = "0.0.0.0:8080".parse().unwrap();
    let reason = crate::config::published_secret_error(&c).expect("refused");
    assert!(reason.contains("trigger.tokens[0]"), "{reason}");
    assert!(reason.contains("0.0.0.0:8080"), "{reason}");
}

#[test]
fn allowed_origins_are_checked_and_kept_as_browsers_send_them() {
    let c = ok(
        "[server]\nallowed_origins = [\"https://App.Example.com/\", \"http://localhost:3000\", \"https://x.example:443\"]\n",
    );
    assert_eq!(
        c.server.allowed_origins,
        vec![
            "https://app.example.com",
            "http://localhost:3000",
            "https://x.example"
        ]
    );
    assert_eq!(
        ok("[server]\nallowed_origins = [\"*\"]\n")
            .server
            .allowed_origins,
        vec!["*"]
    );
    assert!(ok("").server.allowed_origins.is_empty());
    for bad in [
        "\"https://app.example.com/path\"",
        "\"app.example.com\"",
        "\"ftp://app.example.com\"",
        "\"https://u:p@app.example.com\"",
        "\"https://app.example.com?x=1\"",
    ] {
        invalid_at(
            &format!("[server]\nallowed_origins = [{bad}]\n"),
            2,
            "is not an origin",
        );
    }
    invalid_at(
        "[server]\nallowed_origins = [\"*\", \"https://a.example\"]\n",
        2,
        "mixes",
    );
}

#[test]
fn the_external_module_path_must_be_its_own_path() {
    assert_eq!(ok("").external.path, "/module");
    assert!(!ok("").external.enabled);
    invalid_at("[external]\npath = \"module\"\n", 2, "not a path");
    invalid_at("[external]\npath = \"/ws\"\n", 2, "shadow");
    invalid_at("[external]\npath = \"/module/\"\n", 2, "not a path");
    invalid_at("[external]\npath = \"/api/m\"\n", 2, "shadow");
    invalid_at(
        "[diagnostics]\nws_echo_path = \"/m\"\n[external]\nenabled = true\npath = \"/m\"\n",
        5,
        "same path",
    );
    invalid_at(
        "[diagnostics]\nws_echo_path = \"/m/key\"\n[external]\nenabled = true\npath = \"/m\"\n",
        5,
        "same path",
    );
    ok("[external]\npath = \"/modules-ws\"\nchallenge = \"required\"\n");
    invalid_at("[external]\nchallenge = \"sometimes\"\n", 2, "not one of");
}

#[test]
fn metrics_listen_and_token_are_checked() {
    invalid_at("[metrics]\nlisten = \"nowhere\"\n", 2, "not an address");
    invalid_at("[metrics]\ntoken = \"\"\n", 2, "empty");
}

#[test]
fn tls_needs_both_files_and_resolves_them_against_the_config_folder() {
    invalid_at("[server]\ntls = { cert = \"c.pem\" }\n", 2, "has no key");
    let c = ok("[server]\ntls = { cert = \"tls/c.pem\", key = \"/etc/k.pem\" }\n");
    let tls = c.server.tls.unwrap();
    assert_eq!(tls.cert, p("/srv/modhost/tls/c.pem"));
    assert_eq!(tls.key, p("/etc/k.pem"));
}
