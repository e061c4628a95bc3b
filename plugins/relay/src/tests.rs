use modhost_plugin_api::{Call, ErrorCode, Module};
use modhost_plugin_testkit::{Sent, TestHost, failure, user};
use serde_json::{Value, json};

use crate::{Allow, Relay, RelayModule};

fn parse(params: Value, allow: &Allow) -> Result<Relay, ErrorCode> {
    let call = Call {
        id: 1,
        command: "relay".into(),
        params,
        caller: user("alice", &[]),
    };
    Relay::parse(&call, "relay", allow).map_err(|e| e.code)
}

#[test]
fn parses_a_relay() {
    assert_eq!(
        parse(
            json!({"module": "echo", "command": "echo", "params": {"a": 1}}),
            &Allow::Any
        ),
        Ok(Relay {
            module: "echo".into(),
            command: "echo".into(),
            params: json!({"a": 1}),
        })
    );
    // `params` is optional.
    let relay = parse(json!({"module": "echo", "command": "whoami"}), &Allow::Any).unwrap();
    assert_eq!(relay.params, json!({}));
}

#[test]
fn rejects_bad_params() {
    for bad in [
        json!({"command": "echo"}),
        json!({"module": "echo"}),
        json!({"module": "", "command": "echo"}),
        json!({"module": "echo", "command": ""}),
        json!({"module": 1, "command": "echo"}),
        json!({"module": "echo", "command": "echo", "params": [1]}),
        json!({"module": "echo", "command": "echo", "params": "{}"}),
        json!({"module": "relay", "command": "relay"}),
    ] {
        assert_eq!(
            parse(bad.clone(), &Allow::Any).unwrap_err(),
            ErrorCode::MissingParam,
            "{bad}"
        );
    }
}

#[test]
fn allow_list_limits_targets() {
    let allow = Allow::from_config(&json!({"allow": ["echo"]})).unwrap();
    assert_eq!(allow, Allow::Only(vec!["echo".into()]));
    assert!(parse(json!({"module": "echo", "command": "echo"}), &allow).is_ok());
    assert_eq!(
        parse(json!({"module": "notes", "command": "fetch_notes"}), &allow),
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(Allow::from_config(&json!({})), Ok(Allow::Any));
    assert!(Allow::from_config(&json!({"allow": "echo"})).is_err());
    assert!(Allow::from_config(&json!({"allow": [1]})).is_err());
}

#[test]
fn manifest() {
    let manifest = RelayModule::manifest();
    assert_eq!(manifest.name.as_str(), "relay");
    let relay = manifest.find("relay").unwrap();
    let params: Vec<&str> = relay.params.iter().map(|p| p.as_str()).collect();
    assert_eq!(params, ["module", "command"]);
}

// The `Module` impl, through the root module and the host's call checks,
// with a host that answers relay's calls the way echo and divide would.

#[test]
fn module_relays_results_and_failures() {
    let mut relay = TestHost::of::<RelayModule>()
        .on_call(|module, command, params| match (module, command) {
            ("echo", "echo") => Ok(params.clone()),
            ("divide", "divide") => Err(failure(
                ErrorCode::ModuleError,
                "division by zero: divisor must not be 0",
            )),
            _ => Err(failure(
                ErrorCode::UnknownModule,
                &format!("no module {module}"),
            )),
        })
        .start()
        .unwrap();

    let echoed = relay.call(
        "relay",
        json!({"module": "echo", "command": "echo", "params": {"a": [1]}}),
    );
    assert_eq!(echoed.ok(), &json!({"result": {"a": [1]}}));
    assert!(
        echoed
            .sent
            .contains(&Sent::Call("echo".into(), "echo".into(), json!({"a": [1]})))
    );

    let failed = relay.call(
        "relay",
        json!({"module": "divide", "command": "divide", "params": {}}),
    );
    assert_eq!(failed.err().code, ErrorCode::ModuleError);
    assert_eq!(
        failed.err().message.as_str(),
        "division by zero: divisor must not be 0"
    );

    let unknown = relay.call("relay", json!({"module": "ghost", "command": "x"}));
    assert_eq!(unknown.err().code, ErrorCode::UnknownModule);

    // Refused before any call is made.
    let itself = relay.call("relay", json!({"module": "relay", "command": "relay"}));
    assert_eq!(itself.err().code, ErrorCode::MissingParam);
    assert!(!itself.sent.iter().any(|s| matches!(s, Sent::Call(..))));
}

#[test]
fn module_refuses_a_bad_allow_list() {
    let refused = TestHost::of::<RelayModule>()
        .config(json!({"allow": "echo"}))
        .start()
        .err()
        .unwrap();
    assert!(refused.contains("allow"), "{refused}");
}
