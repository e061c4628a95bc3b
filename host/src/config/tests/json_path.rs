//! [`JsonPath`]: which texts are paths, and what a path finds in a document.

use serde_json::json;

use crate::config::{
    JsonPath, JsonPathError, MAX_JSON_PATH_BYTES, MAX_JSON_PATH_SEGMENTS, PathBlocked,
};

#[test]
fn dotted_keys_are_paths() {
    for text in [
        "id",
        "user.id",
        "data.user.pk",
        "user_id",
        "a-b.c:d",
        "ユーザー.id",
    ] {
        let path = JsonPath::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(path.as_str(), text);
        assert_eq!(path.to_string(), text);
        assert_eq!(path.segments().collect::<Vec<_>>().join("."), text);
    }
    assert_eq!(
        JsonPath::parse("data.user.pk")
            .unwrap()
            .segments()
            .collect::<Vec<_>>(),
        ["data", "user", "pk"]
    );
}

#[test]
fn malformed_paths_say_what_is_wrong() {
    let cases = [
        ("", JsonPathError::Empty),
        (".", JsonPathError::EmptySegment { segment: 1 }),
        (".id", JsonPathError::EmptySegment { segment: 1 }),
        ("user.", JsonPathError::EmptySegment { segment: 2 }),
        ("data..pk", JsonPathError::EmptySegment { segment: 2 }),
        ("user id", JsonPathError::Whitespace),
        (" user", JsonPathError::Whitespace),
        ("user\n.id", JsonPathError::Whitespace),
        ("user\u{0}", JsonPathError::Whitespace),
    ];
    for (text, want) in cases {
        assert_eq!(JsonPath::parse(text), Err(want), "{text:?}");
    }
}

#[test]
fn paths_are_bounded() {
    let longest = "a".repeat(MAX_JSON_PATH_BYTES);
    assert!(JsonPath::parse(&longest).is_ok());
    let too_long = "a".repeat(MAX_JSON_PATH_BYTES + 1);
    assert_eq!(
        JsonPath::parse(&too_long),
        Err(JsonPathError::TooLong {
            len: MAX_JSON_PATH_BYTES + 1
        })
    );
    let deepest = vec!["k"; MAX_JSON_PATH_SEGMENTS].join(".");
    assert!(JsonPath::parse(&deepest).is_ok());
    let too_deep = vec!["k"; MAX_JSON_PATH_SEGMENTS + 1].join(".");
    assert_eq!(
        JsonPath::parse(&too_deep),
        Err(JsonPathError::TooDeep {
            segments: MAX_JSON_PATH_SEGMENTS + 1
        })
    );
}

#[test]
fn lookup_follows_objects_only() {
    let doc = json!({
        "user": {"id": 1, "name": null},
        "data": {"user": {"pk": "x"}},
        "name": "bob",
        "user.id": "not reached",
    });
    let at = |p: &str| JsonPath::parse(p).unwrap();
    assert_eq!(at("user.id").lookup(&doc), Ok(Some(&json!(1))));
    assert_eq!(at("data.user.pk").lookup(&doc), Ok(Some(&json!("x"))));
    assert_eq!(at("name").lookup(&doc), Ok(Some(&json!("bob"))));
    // A key with a dot in it is never matched: the path means nested keys.
    assert_eq!(at("user.pk").lookup(&doc), Ok(None));
    // Missing keys and null levels mean nothing is there.
    assert_eq!(at("nobody.id").lookup(&doc), Ok(None));
    assert_eq!(at("user.name.first").lookup(&doc), Ok(None));
    assert_eq!(at("user.name").lookup(&doc), Ok(Some(&json!(null))));
    // A level that is a value, not an object, does not fit the path.
    assert_eq!(
        at("name.id").lookup(&doc),
        Err(PathBlocked {
            at: "name".into(),
            found: &json!("bob"),
        })
    );
    assert_eq!(
        at("data.user.pk.x").lookup(&doc),
        Err(PathBlocked {
            at: "data.user.pk".into(),
            found: &json!("x"),
        })
    );
}
