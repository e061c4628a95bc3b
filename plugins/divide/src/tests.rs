use modhost_plugin_api::{ErrorCode, Module};
use modhost_plugin_testkit::{RunExit, TestHost};
use serde_json::{Value, json};

use crate::{BOOM, Divide, divide};

fn quotient(a: Value, b: Value) -> Result<Value, (ErrorCode, String)> {
    divide(&a, &b)
        .map(Value::Number)
        .map_err(|e| (e.code, e.message))
}

#[test]
fn divides_numbers() {
    assert_eq!(quotient(json!(6), json!(3)), Ok(json!(2)));
    assert_eq!(quotient(json!(-6), json!(3)), Ok(json!(-2)));
    assert_eq!(quotient(json!(7), json!(2)), Ok(json!(3.5)));
    assert_eq!(quotient(json!(1.5), json!(0.5)), Ok(json!(3.0)));
    assert_eq!(quotient(json!(1), json!(-4)), Ok(json!(-0.25)));
    assert_eq!(
        quotient(json!(u64::MAX), json!(1)),
        Ok(json!(u64::MAX as f64))
    );
    // Overflows as an integer; fine as a float.
    assert_eq!(
        quotient(json!(i64::MIN), json!(-1)),
        Ok(json!(-(i64::MIN as f64)))
    );
}

#[test]
fn zero_divisor_is_a_module_error() {
    let expected = Err((
        ErrorCode::ModuleError,
        "division by zero: divisor must not be 0".to_owned(),
    ));
    assert_eq!(quotient(json!(1), json!(0)), expected);
    assert_eq!(quotient(json!(1), json!(0.0)), expected);
    assert_eq!(quotient(json!(1), json!(-0.0)), expected);
    assert_eq!(quotient(json!(0), json!(0)), expected);
}

#[test]
fn non_numbers_are_bad_params() {
    for (a, b) in [
        (json!("6"), json!(3)),
        (json!(6), json!("3")),
        (json!(null), json!(3)),
        (json!(6), json!([3])),
        (json!(true), json!(1)),
        (json!({}), json!(1)),
    ] {
        let (code, message) = quotient(a.clone(), b.clone()).unwrap_err();
        assert_eq!(code, ErrorCode::MissingParam, "{a} / {b}");
        assert!(message.contains("must be a number"), "{message}");
    }
}

#[test]
fn overflowing_quotient_is_an_error_not_null() {
    let (code, _) = quotient(json!(1e308), json!(1e-308)).unwrap_err();
    assert_eq!(code, ErrorCode::ModuleError);
}

#[test]
fn manifest() {
    let manifest = Divide::manifest();
    assert_eq!(manifest.name.as_str(), "divide");
    let params: Vec<&str> = manifest
        .find("divide")
        .unwrap()
        .params
        .iter()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(params, ["dividend", "divisor"]);
    assert!(manifest.find("boom").is_some());
}

// The `Module` impl, through the root module and the host's call checks.

#[test]
fn module_divides_and_survives_its_own_panic() {
    let mut module = TestHost::of::<Divide>().start().unwrap();
    let ok = module.call("divide", json!({"dividend": 10, "divisor": 4}));
    assert_eq!(ok.ok(), &json!({"quotient": 2.5}));
    let zero = module.call("divide", json!({"dividend": 10, "divisor": 0}));
    assert_eq!(
        zero.err().message.as_str(),
        "division by zero: divisor must not be 0"
    );
    let missing = module.call("divide", json!({"dividend": 10}));
    assert_eq!(missing.err().code, ErrorCode::MissingParam);

    let boom = module.call("boom", json!({}));
    assert_eq!(boom.err().code, ErrorCode::ModulePanicked);
    assert!(boom.err().message.contains(BOOM), "{}", boom.err().message);
    // The instance was rebuilt and keeps serving.
    assert_eq!(
        module
            .call("divide", json!({"dividend": 9, "divisor": 3}))
            .ok(),
        &json!({"quotient": 3})
    );
    assert_eq!(module.shutdown(), RunExit::Shutdown);
}
