//! [`Call`]: one call as a handler sees it, with its params parsed.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{abi::CallMsg, error::ModuleError, types::Caller};

/// One call, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Host-assigned id (used by [`Host::emit`](crate::Host::emit)).
    pub id: u64,
    /// The command name.
    pub command: String,
    /// The params object.
    pub params: Value,
    /// Who is calling, stamped by the host.
    pub caller: Caller,
}

impl Call {
    pub(crate) fn from_msg(msg: CallMsg) -> Result<Self, ModuleError> {
        let params = serde_json::from_str(msg.params.as_str())
            .map_err(|e| ModuleError::bad_params(format!("params are not valid JSON: {e}")))?;
        Ok(Self {
            id: msg.id,
            command: msg.command.into_string(),
            params,
            caller: msg.caller,
        })
    }

    /// The param `name` converted to `T`, or a `missing-param` error that
    /// names it.
    pub fn param<T: DeserializeOwned>(&self, name: &str) -> Result<T, ModuleError> {
        let value = self
            .params
            .get(name)
            .ok_or_else(|| ModuleError::bad_params(format!("param `{name}` is missing")))?;
        T::deserialize(value)
            .map_err(|e| ModuleError::bad_params(format!("param `{name}` is invalid: {e}")))
    }

    /// The calling user's id, stamped by the host (empty for the operator;
    /// for a call from a module, the user it was handling a call for).
    pub fn user(&self) -> &str {
        self.caller.user.as_str()
    }
}
