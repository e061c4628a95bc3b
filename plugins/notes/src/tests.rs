use modhost_plugin_api::{ErrorCode, Module};
use modhost_plugin_testkit::{Running, TestHost, module, user};
use serde_json::{Value, json};

use crate::{DEFAULT_MAX_NOTES_PER_USER, MAX_NOTE_BYTES, Notebook, Notes, limit_from_config};

fn start(config: Value) -> Result<Running, String> {
    TestHost::of::<Notes>().config(config).start()
}

#[test]
fn notes_are_per_user() {
    let mut book = Notebook::new(10);
    assert_eq!(book.write("alice", "a1".into()), Ok(1));
    assert_eq!(book.write("bob", "b1".into()), Ok(1));
    assert_eq!(book.write("alice", "a2".into()), Ok(2));
    assert_eq!(book.fetch("alice").unwrap(), ["a1", "a2"]);
    assert_eq!(book.fetch("bob").unwrap(), ["b1"]);
    assert!(book.fetch("carol").unwrap().is_empty());
}

#[test]
fn empty_user_is_forbidden() {
    let mut book = Notebook::new(10);
    assert_eq!(
        book.write("", "x".into()).unwrap_err().code,
        ErrorCode::Forbidden
    );
    assert_eq!(book.fetch("").unwrap_err().code, ErrorCode::Forbidden);
}

#[test]
fn limit_is_enforced_per_user() {
    let mut book = Notebook::new(2);
    book.write("alice", "1".into()).unwrap();
    book.write("alice", "2".into()).unwrap();
    let refused = book.write("alice", "3".into()).unwrap_err();
    assert_eq!(refused.code, ErrorCode::ModuleError);
    assert!(
        refused.message.contains("at most 2 notes per user"),
        "{}",
        refused.message
    );
    assert_eq!(book.fetch("alice").unwrap().len(), 2);
    assert_eq!(book.write("bob", "1".into()), Ok(1));

    // Lowering the limit keeps what is stored; raising it allows writes again.
    book.set_limit(1);
    assert_eq!(book.fetch("alice").unwrap().len(), 2);
    assert!(book.write("alice", "3".into()).is_err());
    book.set_limit(3);
    assert_eq!(book.write("alice", "3".into()), Ok(3));
}

#[test]
fn note_size_is_bounded_in_bytes() {
    let mut book = Notebook::new(10);
    assert_eq!(book.write("alice", "x".repeat(MAX_NOTE_BYTES)), Ok(1));
    assert_eq!(
        book.write("alice", "x".repeat(MAX_NOTE_BYTES + 1))
            .unwrap_err()
            .code,
        ErrorCode::TooLarge
    );
    // 2048 two-byte characters are 4096 bytes; one more is over.
    assert_eq!(book.write("alice", "é".repeat(2048)), Ok(2));
    assert_eq!(
        book.write("alice", "é".repeat(2049)).unwrap_err().code,
        ErrorCode::TooLarge
    );
}

#[test]
fn limit_comes_from_config() {
    assert_eq!(
        limit_from_config(&json!({})),
        Ok(DEFAULT_MAX_NOTES_PER_USER)
    );
    assert_eq!(
        limit_from_config(&Value::Null),
        Ok(DEFAULT_MAX_NOTES_PER_USER)
    );
    assert_eq!(limit_from_config(&json!({"max_notes_per_user": 3})), Ok(3));
    for bad in [json!(0), json!(-1), json!(2.5), json!("3")] {
        assert!(
            limit_from_config(&json!({ "max_notes_per_user": bad })).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn manifest() {
    let manifest = Notes::manifest();
    assert_eq!(manifest.name.as_str(), "notes");
    let write = manifest.find("write_note").unwrap();
    assert_eq!(
        write.params.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        ["note"]
    );
    assert!(write.needs_reply && !write.streams);
    assert!(manifest.find("fetch_notes").unwrap().needs_reply);
}

// The `Module` impl, through the root module and the host's call checks.

#[test]
fn module_stores_per_caller_and_ignores_forged_user() {
    let mut notes = start(json!({"max_notes_per_user": 2})).unwrap();
    let alice = || user("alice", &[]);
    let bob = || user("bob", &[]);

    assert_eq!(
        notes
            .call_as(alice(), "write_note", json!({"note": "hi"}))
            .ok(),
        &json!({"count": 1})
    );
    // A `user` param is just data: the note still belongs to the caller.
    let forged = notes.call_as(
        bob(),
        "write_note",
        json!({"note": "sneaky", "user": "alice"}),
    );
    assert_eq!(forged.ok(), &json!({"count": 1}));
    assert_eq!(
        notes.call_as(alice(), "fetch_notes", json!({})).ok(),
        &json!({"notes": ["hi"]})
    );
    assert_eq!(
        notes
            .call_as(bob(), "fetch_notes", json!({"user": "alice"}))
            .ok(),
        &json!({"notes": ["sneaky"]})
    );

    notes
        .call_as(alice(), "write_note", json!({"note": "2"}))
        .ok();
    let over = notes.call_as(alice(), "write_note", json!({"note": "3"}));
    assert_eq!(over.err().code, ErrorCode::ModuleError);

    // A config change raises the limit and keeps the notes.
    notes.reconfigure(json!({"max_notes_per_user": 5}));
    assert_eq!(
        notes
            .call_as(alice(), "write_note", json!({"note": "3"}))
            .ok(),
        &json!({"count": 3})
    );
    // A bad one is logged and ignored.
    notes.reconfigure(json!({"max_notes_per_user": "lots"}));
    assert_eq!(
        notes
            .call_as(alice(), "write_note", json!({"note": "4"}))
            .ok(),
        &json!({"count": 4})
    );

    assert_eq!(
        notes
            .call_as(module("relay"), "fetch_notes", json!({}))
            .err()
            .code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        notes
            .call_as(alice(), "write_note", json!({"note": 5}))
            .err()
            .code,
        ErrorCode::MissingParam
    );
}

#[test]
fn module_refuses_a_bad_limit_at_load() {
    let refused = start(json!({"max_notes_per_user": 0})).err().unwrap();
    assert!(refused.contains("max_notes_per_user"), "{refused}");
}
