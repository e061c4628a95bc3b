//! Bootstrap reply bodies → principals: the user id and roles at their
//! paths, refusals that name the path and the type, and anonymous clients
//! that never share a name.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::auth::{
    ANONYMOUS_PREFIX, AuthError, Principal,
    bootstrap_reply::{ReplyPaths, principal_from_reply},
};
use crate::config::JsonPath;

fn path(text: &str) -> JsonPath {
    JsonPath::parse(text).unwrap()
}

/// The paths when `[auth.bootstrap]` sets neither.
fn defaults() -> ReplyPaths {
    ReplyPaths {
        user_id: None,
        roles: path("roles"),
    }
}

fn with_user_id_path(user_id: &str) -> ReplyPaths {
    ReplyPaths {
        user_id: Some(path(user_id)),
        ..defaults()
    }
}

fn parse(reply: Value, paths: &ReplyPaths) -> Result<Principal, AuthError> {
    principal_from_reply(reply.to_string().as_bytes(), paths)
}

fn user(reply: Value, paths: &ReplyPaths) -> String {
    match parse(reply.clone(), paths) {
        Ok(p) => p.user,
        Err(e) => panic!("{reply} refused: {e}"),
    }
}

/// The reason a reply is refused, as the log shows it.
fn refusal(reply: Value, paths: &ReplyPaths) -> String {
    match parse(reply.clone(), paths) {
        Err(e @ AuthError::BootstrapBadReply(_)) => {
            assert!(e.is_upstream_failure());
            e.to_string()
        }
        other => panic!("{reply}: expected BootstrapBadReply, got {other:?}"),
    }
}

fn is_anonymous(user: &str) -> bool {
    user.strip_prefix(ANONYMOUS_PREFIX)
        .is_some_and(|rest| rest.len() == 16 && rest.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn default_reads_high_templar_2x_user_objects_and_plain_names() {
    let d = defaults();
    assert_eq!(user(json!({"user": {"id": 1}}), &d), "1");
    assert_eq!(user(json!({"user": {"id": "x", "name": "X"}}), &d), "x");
    assert_eq!(user(json!({"user": "bob"}), &d), "bob");
    assert_eq!(user(json!({"user": 42}), &d), "42");
    assert_eq!(user(json!({"user": -7}), &d), "-7");
    assert_eq!(user(json!({"user": u64::MAX}), &d), u64::MAX.to_string());
    // The rest of a 2.x reply is kept.
    let p = parse(
        json!({"user": {"id": 1}, "allowed_rooms": [{"target": "message", "customer": "1"}], "roles": ["user"]}),
        &d,
    )
    .unwrap();
    assert_eq!(
        p,
        Principal {
            user: "1".into(),
            roles: vec!["user".into()],
            allowed_rooms: vec![json!({"target": "message", "customer": "1"})],
            source: crate::auth::Source::Bootstrap,
        }
    );
}

#[test]
fn an_explicit_path_is_the_only_place_looked_at() {
    let pk = with_user_id_path("data.user.pk");
    assert_eq!(user(json!({"data": {"user": {"pk": 9}}}), &pk), "9");
    assert_eq!(
        user(json!({"data": {"user": {"pk": "u-9"}}, "user": "bob"}), &pk),
        "u-9"
    );
    // `user` is not looked at when the path says otherwise.
    assert!(is_anonymous(&user(json!({"user": "bob"}), &pk)));
    let id = with_user_id_path("id");
    assert_eq!(user(json!({"id": 3, "user": {"id": 4}}), &id), "3");
    // An explicit `user.id` does not fall back to a plain `user`.
    let user_id = with_user_id_path("user.id");
    assert!(is_anonymous(&user(
        json!({"user": {"name": "bob"}}),
        &user_id
    )));
    let shown = refusal(json!({"user": "bob"}), &user_id);
    assert!(
        shown.contains(
            "the user id path \"user.id\" does not fit the reply: user is a string, not an object"
        ),
        "{shown}"
    );
}

#[test]
fn user_ids_of_other_types_are_refused_naming_path_and_type() {
    let d = defaults();
    for (reply, path, kind) in [
        (json!({"user": {"id": {"pk": 1}}}), "user.id", "an object"),
        (json!({"user": {"id": [1]}}), "user.id", "an array"),
        (json!({"user": {"id": true}}), "user.id", "a boolean"),
        (json!({"user": {"id": 1.5}}), "user.id", "a float"),
        (json!({"user": ["bob"]}), "user", "an array"),
        (json!({"user": false}), "user", "a boolean"),
        (json!({"user": 2.0}), "user", "a float"),
    ] {
        let shown = refusal(reply.clone(), &d);
        assert!(
            shown.contains(&format!(
                "the user id at \"{path}\" is {kind}, not a string or an integer"
            )),
            "{reply}: {shown}"
        );
        assert!(shown.contains("user_id_path"), "{shown}");
    }
    let shown = refusal(
        json!({"data": {"user": {"pk": {}}}}),
        &with_user_id_path("data.user.pk"),
    );
    assert!(
        shown.contains("the user id at \"data.user.pk\" is an object"),
        "{shown}"
    );
}

#[test]
fn no_user_id_gives_every_reply_a_name_of_its_own() {
    let d = defaults();
    let replies = [
        json!({}),
        json!({"allowed_rooms": []}),
        json!({"user": null}),
        json!({"user": ""}),
        json!({"user": {}}),
        json!({"user": {"id": null}}),
        json!({"user": {"id": ""}}),
    ];
    let mut seen = HashSet::new();
    for reply in replies.iter().chain(replies.iter()) {
        let name = user(reply.clone(), &d);
        assert!(is_anonymous(&name), "{reply}: {name}");
        assert!(seen.insert(name.clone()), "{name} given twice");
    }
    // Rooms and roles still come from the reply.
    let p = parse(
        json!({"allowed_rooms": [{"target": "public"}], "roles": ["guest"]}),
        &d,
    )
    .unwrap();
    assert!(is_anonymous(&p.user), "{}", p.user);
    assert_eq!(p.roles, ["guest"]);
    assert_eq!(p.allowed_rooms, [json!({"target": "public"})]);
}

#[test]
fn roles_are_an_array_of_strings_at_their_path() {
    let d = defaults();
    assert_eq!(
        parse(json!({"user": "a", "roles": ["admin", "user"]}), &d)
            .unwrap()
            .roles,
        ["admin", "user"]
    );
    for reply in [json!({"user": "a"}), json!({"user": "a", "roles": null})] {
        assert!(parse(reply, &d).unwrap().roles.is_empty());
    }
    let nested = ReplyPaths {
        roles: path("user.roles"),
        ..defaults()
    };
    let p = parse(json!({"user": {"id": 5, "roles": ["staff"]}}), &nested).unwrap();
    assert_eq!((p.user.as_str(), p.roles), ("5", vec!["staff".to_owned()]));
    // Top-level roles are not read when the path points elsewhere.
    assert!(
        parse(json!({"user": {"id": 5}, "roles": ["admin"]}), &nested)
            .unwrap()
            .roles
            .is_empty()
    );

    for (reply, want) in [
        (
            json!({"roles": "admin"}),
            "the roles at \"roles\" are a string, not an array of strings",
        ),
        (
            json!({"roles": {"admin": true}}),
            "the roles at \"roles\" are an object",
        ),
        (
            json!({"roles": ["admin", 1]}),
            "the roles at \"roles\" are an array whose element 1 is an integer, not an array of strings",
        ),
    ] {
        let shown = refusal(reply.clone(), &d);
        assert!(shown.contains(want), "{reply}: {shown}");
        assert!(shown.contains("roles_path"), "{shown}");
    }
    let shown = refusal(json!({"user": "bob"}), &nested);
    assert!(
        shown.contains(
            "the roles path \"user.roles\" does not fit the reply: user is a string, not an object"
        ),
        "{shown}"
    );
}

#[test]
fn bodies_that_are_not_objects_or_bad_rooms_are_refused() {
    let d = defaults();
    for (body, want) in [
        ("[]", "not a JSON object"),
        ("<html>", "not JSON"),
        (
            r#"{"allowed_rooms": ["foo"]}"#,
            "allowed_rooms: element 0 is a string, not an object",
        ),
        (
            r#"{"allowed_rooms": null}"#,
            "allowed_rooms: null, not an array",
        ),
    ] {
        let err = principal_from_reply(body.as_bytes(), &d).unwrap_err();
        assert!(
            matches!(err, AuthError::BootstrapBadReply(_)) && err.to_string().contains(want),
            "{body}: {err}"
        );
    }
}
