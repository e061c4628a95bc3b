use modhost_plugin_api::{Call, ErrorCode, Module};
use modhost_plugin_testkit::{RunExit, Running, Sent, TestHost, module, user};
use serde_json::{Value, json};

use crate::{Command, Echo, MAX_COUNT, caller_json, count_items, count_last};

fn call(command: &str, params: Value) -> Call {
    Call {
        id: 1,
        command: command.into(),
        params,
        caller: user("alice", &["staff"]),
    }
}

fn parse(command: &str, params: Value) -> Result<Command, ErrorCode> {
    Command::parse(&call(command, params)).map_err(|e| e.code)
}

fn start(config: Value) -> Running {
    TestHost::of::<Echo>()
        .config(config)
        .deliveries(3)
        .start()
        .expect("echo starts")
}

#[test]
fn echo_returns_params_unchanged() {
    let params = json!({"a": [1, 2.5, "x", null], "nested": {"b": true}, "unicode": "é✓"});
    assert_eq!(parse("echo", params.clone()), Ok(Command::Echo(params)));
}

#[test]
fn count_validates_n() {
    assert_eq!(parse("count", json!({"n": 1})), Ok(Command::Count(1)));
    assert_eq!(
        parse("count", json!({"n": MAX_COUNT})),
        Ok(Command::Count(MAX_COUNT))
    );
    for bad in [
        json!(0),
        json!(MAX_COUNT + 1),
        json!(-1),
        json!(1.5),
        json!("3"),
        json!(null),
    ] {
        assert_eq!(
            parse("count", json!({ "n": bad })),
            Err(ErrorCode::MissingParam),
            "n = {bad}"
        );
    }
    assert_eq!(parse("count", json!({})), Err(ErrorCode::MissingParam));
}

#[test]
fn count_items_then_last() {
    let items: Vec<Value> = count_items(3).collect();
    assert_eq!(items, vec![json!({"i": 1}), json!({"i": 2})]);
    assert_eq!(count_last(3), json!({"i": 3, "done": true}));
    assert_eq!(count_items(1).count(), 0);
}

#[test]
fn publish_and_notify_validate_params() {
    assert_eq!(
        parse("publish", json!({"rooms": [{"target": "x"}], "data": 1})),
        Ok(Command::Publish {
            rooms: json!([{"target": "x"}]),
            data: json!(1)
        })
    );
    assert_eq!(
        parse("publish", json!({"rooms": {"target": "x"}, "data": 1})),
        Err(ErrorCode::MissingParam)
    );
    assert_eq!(
        parse("publish", json!({"rooms": []})),
        Err(ErrorCode::MissingParam)
    );
    assert_eq!(
        parse("notify", json!({"user": "", "data": 1})),
        Err(ErrorCode::MissingParam)
    );
    assert_eq!(
        parse("notify", json!({"user": 7, "data": 1})),
        Err(ErrorCode::MissingParam)
    );
}

#[test]
fn sleep_is_bounded() {
    assert_eq!(
        parse("sleep", json!({"ms": 600_000})),
        Ok(Command::Sleep(600_000))
    );
    assert_eq!(
        parse("sleep", json!({"ms": 600_001})),
        Err(ErrorCode::MissingParam)
    );
}

#[test]
fn whoami_ignores_forged_params() {
    let mut forged = call(
        "whoami",
        json!({"user": "mallory", "roles": ["admin"], "kind": "operator"}),
    );
    assert_eq!(Command::parse(&forged), Ok(Command::Whoami));
    assert_eq!(
        caller_json(&forged.caller),
        json!({"kind": "user", "user": "alice", "session": "s1", "roles": ["staff"], "module": ""})
    );
    forged.caller = module("relay");
    assert_eq!(caller_json(&forged.caller)["kind"], "module");
    assert_eq!(caller_json(&forged.caller)["module"], "relay");
}

#[test]
fn unknown_command_is_reported() {
    assert_eq!(parse("nope", json!({})), Err(ErrorCode::UnknownCommand));
}

#[test]
fn manifest_declares_every_command() {
    let manifest = Echo::manifest();
    assert_eq!(manifest.name.as_str(), "echo");
    assert_eq!(manifest.version.as_str(), env!("CARGO_PKG_VERSION"));
    let names: Vec<&str> = manifest.commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "echo", "publish", "count", "whoami", "notify", "sleep", "fire", "config", "events"
        ]
    );
    let count = manifest.find("count").unwrap();
    assert!(count.streams && count.needs_reply);
    assert!(!manifest.find("fire").unwrap().needs_reply);
    assert!(
        manifest
            .commands
            .iter()
            .filter(|c| c.name.as_str() != "count")
            .all(|c| !c.streams)
    );
}

// The `Module` impl, through the root module and the host's call checks.

#[test]
fn module_echoes_streams_and_publishes() {
    let mut echo = start(json!({"greeting": "hi"}));

    assert_eq!(echo.call("echo", json!({"a": 1})).ok(), &json!({"a": 1}));

    let counted = echo.call("count", json!({"n": 4}));
    assert_eq!(
        counted.items,
        vec![json!({"i": 1}), json!({"i": 2}), json!({"i": 3})]
    );
    assert_eq!(counted.ok(), &json!({"i": 4, "done": true}));

    let published = echo.call(
        "publish",
        json!({"rooms": [{"target": "t"}], "data": {"x": 1}}),
    );
    assert_eq!(published.ok(), &json!({"delivered": 3}));
    assert_eq!(
        published.sent,
        vec![Sent::Publish(json!([{"target": "t"}]), json!({"x": 1}))]
    );

    let notified = echo.call("notify", json!({"user": "bob", "data": "hey"}));
    assert_eq!(notified.ok(), &json!({"delivered": 3}));
    assert_eq!(
        notified.sent,
        vec![Sent::SendToUser("bob".into(), json!("hey"))]
    );

    // `config` is for admins only; the testkit checks roles as the host does.
    let admin = || user("alice", &["admin"]);
    assert_eq!(
        echo.call_as(admin(), "config", json!({})).ok(),
        &json!({"greeting": "hi"})
    );
    echo.reconfigure(json!({"greeting": "yo"}));
    assert_eq!(
        echo.call_as(admin(), "config", json!({})).ok(),
        &json!({"greeting": "yo"})
    );
    assert_eq!(
        echo.call("config", json!({})).err().code,
        ErrorCode::Forbidden
    );

    let fired = echo.call("fire", json!({"k": "v"}));
    assert_eq!(fired.ok(), &Value::Null);
    assert!(
        fired.logs()[0].contains(r#"{"k":"v"}"#),
        "{:?}",
        fired.logs()
    );

    assert_eq!(
        echo.call_as(admin(), "sleep", json!({"ms": 5})).ok(),
        &json!({"slept": 5})
    );
    // Blocking echo for everyone is for admins only.
    assert_eq!(
        echo.call("sleep", json!({"ms": 5})).err().code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        echo.call("count", json!({"n": 0})).err().code,
        ErrorCode::MissingParam
    );
    assert!(matches!(echo.shutdown(), RunExit::Shutdown));
}

#[test]
fn module_whoami_reports_the_stamp() {
    let mut echo = start(json!({}));
    let who = echo.call_as(
        user("bob", &["admin"]),
        "whoami",
        json!({"user": "mallory"}),
    );
    assert_eq!(
        who.ok(),
        &json!({"kind": "user", "user": "bob", "session": "s1", "roles": ["admin"], "module": ""})
    );
}

#[test]
fn events_are_remembered_in_order_and_bounded_for_admins_only() {
    let mut module = start(json!({}));
    for i in 0..crate::MAX_EVENTS + 2 {
        module.event(
            "user_login",
            json!({"user": format!("account:u{i}"), "roles": []}),
        );
    }
    let refused = module.call("events", json!({}));
    assert_eq!(refused.err().code, ErrorCode::Forbidden);
    let admin = user("root", &["admin"]);
    let events = module.call_as(admin, "events", json!({}));
    let events = events.ok().as_array().unwrap().clone();
    assert_eq!(events.len(), crate::MAX_EVENTS);
    assert_eq!(
        events[0],
        json!({"name": "user_login", "data": {"user": "account:u2", "roles": []}})
    );
}
