//! The testkit against a module defined right here: `TestHost::of` needs no
//! library and no exported symbol, only the type.

use modhost_plugin_api::{Call, CommandSpec, ErrorCode, Host, Manifest, Module, ModuleError};
use serde_json::{Value, json};

use crate::{RunExit, TestHost, user};

/// Counts the calls that reach it, so a test can tell a refusal by the
/// host's checks from one by the module.
struct Tally {
    seen: u64,
}

impl Module for Tally {
    fn manifest() -> Manifest {
        Manifest::new("tally", "1.0.0")
            .command(CommandSpec::new("add").param("n"))
            .command(CommandSpec::new("seen"))
            .command(CommandSpec::new("reset").min_role("admin"))
            .command(CommandSpec::new("boom"))
    }

    fn on_load(_host: &Host) -> Result<Self, String> {
        Ok(Tally { seen: 0 })
    }

    fn handle(&mut self, call: &Call, _host: &Host) -> Result<Value, ModuleError> {
        self.seen += 1;
        match call.command.as_str() {
            "add" => Ok(json!(call.param::<u64>("n")?)),
            "seen" => Ok(json!(self.seen)),
            "reset" => {
                self.seen = 0;
                Ok(Value::Null)
            }
            "boom" => panic!("boom"),
            other => Err(ModuleError::new(format!("no {other}"))),
        }
    }
}

#[test]
fn calls_the_host_would_refuse_never_reach_the_module() {
    let mut tally = TestHost::of::<Tally>()
        .max_params_bytes(32)
        .start()
        .unwrap();

    let missing = tally.call("add", json!({"m": 1}));
    assert_eq!(missing.err().code, ErrorCode::MissingParam);
    assert_eq!(missing.err().message, r#"tally.add needs the param "n""#);
    assert_eq!(
        tally.call("nope", json!({})).err().code,
        ErrorCode::UnknownCommand
    );
    assert_eq!(
        tally.call("reset", json!({})).err().code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        tally
            .call("add", json!({"n": 1, "pad": "x".repeat(32)}))
            .err()
            .code,
        ErrorCode::TooLarge
    );
    assert_eq!(tally.call("seen", json!({})).ok(), &json!(1));

    assert_eq!(tally.call("add", json!({"n": 5})).ok(), &json!(5));
    let reset = tally.call_as(user("root", &["admin"]), "reset", json!({}));
    assert_eq!(reset.ok(), &Value::Null);
    assert_eq!(tally.shutdown(), RunExit::Shutdown);
}

#[test]
fn a_panic_is_answered_and_the_instance_rebuilt() {
    let mut tally = TestHost::of::<Tally>().start().unwrap();
    assert_eq!(tally.call("add", json!({"n": 2})).ok(), &json!(2));
    let boom = tally.call("boom", json!({}));
    assert_eq!(boom.err().code, ErrorCode::ModulePanicked);
    // The rebuilt instance starts from `on_load` again.
    assert_eq!(tally.call("seen", json!({})).ok(), &json!(1));
}
