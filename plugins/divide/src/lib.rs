//! `divide`: divides two numbers, and panics on request. It exists to show
//! how module errors and panics reach a caller.
//!
//! | command | params | result |
//! |---|---|---|
//! | `divide` | `dividend`, `divisor` (JSON numbers) | `{"quotient": x}` |
//! | `boom` | none | panics; the host answers `module-panicked` and restarts the instance |
//!
//! A zero divisor is a `module-error` ("division by zero: divisor must not
//! be 0"); a param that is not a number is `missing-param`.
//!
//! The quotient is an integer when both operands are integers and divide
//! exactly (`6 / 3` → `2`), otherwise a float (`7 / 2` → `3.5`). A quotient
//! too large for a JSON number (`1e308 / 1e-308`) is a `module-error`, not
//! `null`.
//!
//! # Layout
//! - [`divide`]: the arithmetic on JSON numbers, tested without a host
//! - [`Divide`]: the thin `Module` impl
//! - `tests.rs`: unit tests, plus the `Module` impl (and its panic) through
//!   the testkit

use modhost_plugin_api::{
    Call, CommandSpec, ErrorCode, Host, Manifest, Module, ModuleError, export_module,
};
use serde_json::{Number, Value, json};

#[cfg(test)]
mod tests;

/// The panic message of `boom`, which tests look for.
pub const BOOM: &str = "boom: divide panicked on purpose";

/// `dividend / divisor` for two JSON values that must be numbers.
pub fn divide(dividend: &Value, divisor: &Value) -> Result<Number, ModuleError> {
    let a = number(dividend, "dividend")?;
    let b = number(divisor, "divisor")?;
    if b == 0.0 {
        return Err(ModuleError::new("division by zero: divisor must not be 0"));
    }
    // Exact integer division stays an integer. The checked operations are
    // `None` for `i64::MIN / -1`, which then takes the float path.
    if let (Some(x), Some(y)) = (dividend.as_i64(), divisor.as_i64())
        && x.checked_rem(y) == Some(0)
        && let Some(q) = x.checked_div(y)
    {
        return Ok(q.into());
    }
    Number::from_f64(a / b)
        .ok_or_else(|| ModuleError::new("quotient is too large for a JSON number"))
}

/// `value` as an `f64`, or a `missing-param` error naming `name`.
fn number(value: &Value, name: &str) -> Result<f64, ModuleError> {
    value.as_f64().ok_or_else(|| {
        ModuleError::bad_params(format!("param `{name}` must be a number, got {value}"))
    })
}

/// The divide module. It keeps no state.
pub struct Divide;

impl Module for Divide {
    // `divide` is arithmetic; `boom` stays on the instance thread, where the panic tests expect it.
    const NON_BLOCKING: &'static [&'static str] = &["divide"];

    fn manifest() -> Manifest {
        Manifest::new("divide", env!("CARGO_PKG_VERSION"))
            .description("Divides two numbers; `boom` panics on purpose")
            .command(
                CommandSpec::new("divide")
                    .param("dividend")
                    .param("divisor")
                    .description("Returns {quotient: dividend / divisor}"),
            )
            .command(CommandSpec::new("boom").description("Panics, to test panic containment"))
    }

    fn on_load(_host: &Host) -> Result<Self, String> {
        Ok(Divide)
    }

    fn handle(&mut self, call: &Call, _host: &Host) -> Result<Value, ModuleError> {
        match call.command.as_str() {
            "divide" => {
                let quotient = divide(&call.param("dividend")?, &call.param("divisor")?)?;
                Ok(json!({ "quotient": quotient }))
            }
            "boom" => panic!("{BOOM}"),
            other => Err(ModuleError {
                code: ErrorCode::UnknownCommand,
                message: format!("divide has no command `{other}`"),
            }),
        }
    }
}

export_module!(Divide);
