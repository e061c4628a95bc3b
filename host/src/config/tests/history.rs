//! `[history]`: rooms, per-room bounds, the total bound, and refusals.

use super::*;

#[test]
fn rooms_read_with_defaults_and_history_is_off_without_them() {
    let c = ok("[history]\nmax_bytes = 2097152\npersist = true\n\
        [[history.rooms]]\nroom = { chat = \"*\" }\n\
        [[history.rooms]]\nroom = { feed = 1 }\nsize = 7\nage_secs = 60\n");
    assert_eq!(c.history.max_bytes, 2 * 1024 * 1024);
    assert!(c.history.persist);
    assert_eq!(c.history.rooms.len(), 2);
    assert_eq!(c.history.rooms[0].room, json!({"chat": "*"}));
    assert_eq!(c.history.rooms[0].size, 100);
    assert_eq!(c.history.rooms[0].age, Duration::from_secs(300));
    assert_eq!(c.history.rooms[1].size, 7);
    assert_eq!(c.history.rooms[1].age, Duration::from_secs(60));
    let none = ok("");
    assert!(none.history.rooms.is_empty() && !none.history.persist);
    assert_eq!(none.history.max_bytes, 64 * 1024 * 1024);
}

#[test]
fn bad_rooms_and_bounds_are_refused_at_their_line() {
    let (e, shown) = err("[[history.rooms]]\nroom = \"chat\"\n");
    assert_eq!(e.line(), Some(2), "{shown}");
    assert!(shown.contains("is a string, not a room"), "{shown}");
    invalid_at(
        "[[history.rooms]]\nroom = { a = 1 }\nsize = 0\n",
        3,
        "too small",
    );
    invalid_at(
        "[[history.rooms]]\nroom = { a = 1 }\nage_secs = 99999999\n",
        3,
        "too large",
    );
    invalid_at("[history]\nmax_bytes = 1000\n", 2, "too small");
}

#[test]
fn a_history_change_needs_a_restart() {
    let old = ok("");
    let new = ok("[[history.rooms]]\nroom = { a = 1 }\n");
    assert_eq!(restart_required(&old, &new), vec!["history"]);
}
