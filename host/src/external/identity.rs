//! `get_user`, `get_user_list` and `check_permission`: the host's users as
//! sse-platform's modules knew them (`{id, username, email, role}`).
//!
//! The users are those of the static tokens in `[[auth.tokens]]` (JWT and
//! bootstrap users exist only while connected, and the accounts store is
//! not built yet). A user named by several tokens appears once, with the
//! roles of all of them. The token itself is never in a reply: sse-platform
//! broadcast every user's access token to every module.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::Config;

/// Every known user, by name, with their roles in token order.
fn users(config: &Config) -> BTreeMap<&str, Vec<&str>> {
    let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for token in &config.auth.tokens {
        let roles = users.entry(token.user.as_str()).or_default();
        for role in &token.roles {
            if !roles.contains(&role.as_str()) {
                roles.push(role);
            }
        }
    }
    users
}

/// sse-platform's single `role`: `admin` if the user has it, else the first.
fn main_role<'a>(roles: &[&'a str]) -> &'a str {
    if roles.contains(&crate::auth::ADMIN_ROLE) {
        crate::auth::ADMIN_ROLE
    } else {
        roles.first().copied().unwrap_or("")
    }
}

fn record(name: &str, roles: &[&str]) -> Value {
    json!({
        "id": name,
        "username": name,
        "email": Value::Null,
        "role": main_role(roles),
        "roles": roles,
    })
}

/// `{id, username, email, role, roles}` of `username`, if the host knows them.
pub(super) fn user(config: &Config, username: &str) -> Option<Value> {
    users(config)
        .get(username)
        .map(|roles| record(username, roles))
}

/// `{username: {…}}` of every user.
pub(super) fn user_list(config: &Config) -> Value {
    let list: serde_json::Map<String, Value> = users(config)
        .iter()
        .map(|(name, roles)| ((*name).to_owned(), record(name, roles)))
        .collect();
    Value::Object(list)
}
