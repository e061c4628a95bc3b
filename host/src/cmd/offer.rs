//! The resource offer: the modules and commands a user may call
//! (messidge's offer), filtered by the user's roles.

use serde_json::{Value, json};

use crate::{auth::Principal, modules::Registry};

/// The running modules with the commands `principal` may call, as the
/// offer's JSON array; modules with none are left out.
pub(super) fn modules_for(registry: &Registry, principal: &Principal) -> Value {
    let may_call = |min_role: &str| {
        min_role.is_empty()
            || principal
                .roles
                .iter()
                .any(|r| r == min_role || r == "admin")
    };
    let modules = registry
        .running()
        .iter()
        .filter_map(|g| {
            let commands: Vec<Value> = g
                .manifest
                .commands
                .iter()
                .filter(|c| may_call(c.min_role.as_str()))
                .map(|c| {
                    json!({
                        "name": c.name.as_str(),
                        "params": c.params.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                        "needs_reply": c.needs_reply,
                        "streams": c.streams,
                    })
                })
                .collect();
            (!commands.is_empty()).then(|| {
                json!({
                    "name": g.name,
                    "version": g.manifest.version.as_str(),
                    "commands": commands,
                })
            })
        })
        .collect();
    Value::Array(modules)
}
