//! `[[auth.roles]]`: rooms by role, for principals whose credentials name
//! roles but no rooms (accounts). A room value that is exactly `"{user}"`
//! becomes the principal's user name — the name modules see as
//! `caller.user`, e.g. `account:alice` — so per-user rooms need no
//! per-user config. The config check allows `{user}` only as a whole value.

use serde_json::Value;

use crate::config::{RoleRooms, USER_PLACEHOLDER};

/// The rooms `roles` give `user`: every room of every matching
/// `[[auth.roles]]` entry, `{user}` substituted, each room once.
pub fn rooms_for(table: &[RoleRooms], user: &str, roles: &[String]) -> Vec<Value> {
    let mut rooms: Vec<Value> = Vec::new();
    for entry in table.iter().filter(|e| roles.contains(&e.name)) {
        for pattern in &entry.allowed_rooms {
            let mut room = pattern.clone();
            if let Some(fields) = room.as_object_mut() {
                for value in fields.values_mut() {
                    if value.as_str() == Some(USER_PLACEHOLDER) {
                        *value = Value::String(user.to_owned());
                    }
                }
            }
            if !rooms.contains(&room) {
                rooms.push(room);
            }
        }
    }
    rooms
}
