//! Tests for `rooms::index`, including a property test against a brute-force scan.

use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn room(v: Value) -> Room {
    Room::parse(&v).unwrap()
}

fn id(s: &str) -> Arc<str> {
    s.into()
}

/// (session, request id) of every delivery, in order.
fn deliveries(index: &RoomIndex<u32>, published: &[Room]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    index.for_each_match(published, |r, session, request_id, handle| {
        assert_eq!(*handle as u64, session * 1000 + u64::from(r.len() as u32));
        out.push((session, request_id.to_string()));
    });
    out
}

fn sorted(mut v: Vec<(u64, String)>) -> Vec<(u64, String)> {
    v.sort();
    v
}

fn handle(session: u64, r: &Room) -> u32 {
    (session * 1000 + r.len() as u64) as u32
}

fn sub(index: &mut RoomIndex<u32>, session: u64, request_id: &str, r: Value) {
    let r = room(r);
    let h = handle(session, &r);
    index.subscribe(session, id(request_id), r, h).unwrap();
}

#[test]
fn wildcards_in_both_directions() {
    let mut index = RoomIndex::new();
    sub(
        &mut index,
        1,
        "one",
        json!({"target": "chat", "customer": "1"}),
    );
    sub(
        &mut index,
        2,
        "two",
        json!({"target": "chat", "customer": 2}),
    );
    sub(
        &mut index,
        3,
        "all",
        json!({"target": "chat", "customer": "*"}),
    );
    sub(
        &mut index,
        4,
        "other",
        json!({"target": "mail", "customer": "1"}),
    );
    sub(&mut index, 5, "short", json!({"customer": "1"}));
    assert_eq!(index.num_rooms(), 5);

    // Concrete publish reaches its own room and the "*" subscription.
    let got = sorted(deliveries(
        &index,
        &[room(json!({"customer": "1", "target": "chat"}))],
    ));
    assert_eq!(got, [(1, "one".into()), (3, "all".into())]);
    // Type-sensitive: 1 is not "1".
    let got = sorted(deliveries(
        &index,
        &[room(json!({"customer": 1, "target": "chat"}))],
    ));
    assert_eq!(got, [(3, "all".into())]);
    // A "*" publish reaches every customer of that target.
    let got = sorted(deliveries(
        &index,
        &[room(json!({"customer": "*", "target": "chat"}))],
    ));
    assert_eq!(
        got,
        [(1, "one".into()), (2, "two".into()), (3, "all".into())]
    );
    // "*" everywhere reaches every room with these keys.
    let got = sorted(deliveries(
        &index,
        &[room(json!({"customer": "*", "target": "*"}))],
    ));
    assert_eq!(got.len(), 4);
    // Other key sets are separate.
    let got = deliveries(&index, &[room(json!({"customer": "*"}))]);
    assert_eq!(got, [(5, "short".into())]);
    assert!(deliveries(&index, &[room(json!({"nobody": "*"}))]).is_empty());
    assert!(deliveries(&index, &[]).is_empty());
}

#[test]
fn several_published_rooms_deliver_once() {
    let mut index = RoomIndex::new();
    sub(&mut index, 1, "one", json!({"customer": "1"}));
    sub(&mut index, 1, "all", json!({"customer": "*"}));
    sub(&mut index, 2, "one", json!({"customer": "1"}));
    let published = [
        room(json!({"customer": "*"})),
        room(json!({"customer": "1"})),
        room(json!({"customer": "2"})),
        room(json!({"customer": "1"})),
    ];
    let got = deliveries(&index, &published);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        sorted(got),
        [(1, "all".into()), (1, "one".into()), (2, "one".into())]
    );
}

#[test]
fn request_id_binds_one_room() {
    let mut index = RoomIndex::new();
    sub(&mut index, 1, "r", json!({"a": 1}));
    let again = index.subscribe(1, id("r"), room(json!({"a": 2})), 0);
    assert_eq!(again, Err(IndexError::RequestIdInUse));
    let same = index.subscribe(1, id("r"), room(json!({"a": 1})), 0);
    assert_eq!(same, Err(IndexError::RequestIdInUse));
    // Another session may use the same id.
    sub(&mut index, 2, "r", json!({"a": 2}));
    assert_eq!(index.num_subscriptions(), 2);
    assert_eq!(
        index.subscription_room(1, "r"),
        Some(&room(json!({"a": 1})))
    );
    assert!(deliveries(&index, &[room(json!({"a": 2}))]) == [(2, "r".into())]);
}

#[test]
fn unsubscribe_twice() {
    let mut index = RoomIndex::new();
    sub(&mut index, 1, "r", json!({"a": "*"}));
    assert!(index.unsubscribe(1, "r"));
    assert!(!index.unsubscribe(1, "r"));
    assert!(!index.unsubscribe(9, "r"));
    assert_eq!(index.num_rooms(), 0);
    assert_eq!(index.num_subscriptions(), 0);
    assert_eq!(index.debug_node_count(), 0);
    // The id is free again.
    sub(&mut index, 1, "r", json!({"a": 1}));
    assert_eq!(index.session_subscriptions(1), 1);
}

#[test]
fn remove_session_cleans_everything() {
    let mut index = RoomIndex::new();
    for i in 0..50_u64 {
        sub(
            &mut index,
            7,
            &format!("c{i}"),
            json!({"customer": i % 5, "target": "chat"}),
        );
        sub(
            &mut index,
            7,
            &format!("w{i}"),
            json!({"customer": "*", "target": i % 3}),
        );
        sub(&mut index, 7, &format!("e{i}"), json!({}));
    }
    sub(
        &mut index,
        8,
        "keep",
        json!({"customer": 1, "target": "chat"}),
    );
    assert_eq!(index.session_subscriptions(7), 150);
    assert_eq!(index.num_rooms(), 5 + 3 + 1);

    assert_eq!(index.remove_session(7), 150);
    assert_eq!(index.remove_session(7), 0);
    assert_eq!(index.session_subscriptions(7), 0);
    assert_eq!(index.num_subscriptions(), 1);
    assert_eq!(index.num_rooms(), 1);
    // key set root + customer branch + target leaf
    assert_eq!(index.debug_node_count(), 3);
    assert_eq!(
        deliveries(&index, &[room(json!({"customer": "*", "target": "*"}))]),
        [(8, "keep".into())]
    );

    assert_eq!(index.remove_session(8), 1);
    assert_eq!(index.num_rooms(), 0);
    assert_eq!(index.num_subscriptions(), 0);
    assert_eq!(index.debug_node_count(), 0);
    assert!(index.key_sets.is_empty() && index.sessions.is_empty());
    assert_eq!(index.rooms().count(), 0);
}

#[test]
fn empty_room_only_reaches_empty_subscriptions() {
    let mut index = RoomIndex::new();
    sub(&mut index, 1, "e", json!({}));
    sub(&mut index, 1, "a", json!({"a": "*"}));
    assert_eq!(deliveries(&index, &[room(json!({}))]), [(1, "e".into())]);
    assert_eq!(
        deliveries(&index, &[room(json!({"a": 1}))]),
        [(1, "a".into())]
    );
    assert_eq!(index.debug_node_count(), 3);
}

#[test]
fn rooms_lists_subscriber_counts() {
    let mut index = RoomIndex::new();
    sub(&mut index, 1, "x", json!({"a": 1}));
    sub(&mut index, 2, "x", json!({"a": 1.0}));
    sub(&mut index, 2, "y", json!({"a": "*"}));
    let mut rooms: Vec<(String, usize)> = index.rooms().map(|(r, n)| (r.to_string(), n)).collect();
    rooms.sort();
    assert_eq!(
        rooms,
        [(r#"{"a":"*"}"#.into(), 1), (r#"{"a":1}"#.into(), 2)]
    );
}

#[test]
fn slots_stay_correct_after_swap_remove() {
    let mut index = RoomIndex::new();
    for s in 0..6 {
        sub(&mut index, s, "r", json!({"a": 1}));
    }
    assert!(index.unsubscribe(0, "r")); // moves session 5 to slot 0
    assert!(index.unsubscribe(5, "r"));
    assert!(index.unsubscribe(2, "r"));
    let got = sorted(deliveries(&index, &[room(json!({"a": 1}))]));
    assert_eq!(got, [(1, "r".into()), (3, "r".into()), (4, "r".into())]);
}

// ---- model check against a brute-force scan -------------------------

#[derive(Debug, Clone)]
enum Op {
    Subscribe {
        session: u64,
        request_id: u8,
        room: Room,
    },
    Unsubscribe {
        session: u64,
        request_id: u8,
    },
    RemoveSession(u64),
    Publish(Vec<Room>),
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(json!("*")),
        2 => Just(json!("a")),
        2 => Just(json!("b")),
        2 => Just(json!("1")),
        2 => Just(json!(1)),
        1 => Just(json!(1.0)),
        1 => Just(json!(2)),
        1 => Just(json!(null)),
        1 => Just(json!(true)),
    ]
}

fn arb_room() -> impl Strategy<Value = Room> {
    let keys = prop_oneof![
        Just(vec!["k", "l"]),
        Just(vec!["k", "m"]),
        Just(vec!["k", "l", "m"]),
    ];
    keys.prop_flat_map(|keys| {
        proptest::collection::vec(arb_value(), keys.len()).prop_map(move |values| {
            let map: serde_json::Map<String, Value> =
                keys.iter().map(|k| k.to_string()).zip(values).collect();
            Room::parse(&Value::Object(map)).unwrap()
        })
    })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4_u64, 0..4_u8, arb_room()).prop_map(|(session, request_id, room)| {
            Op::Subscribe { session, request_id, room }
        }),
        2 => (0..4_u64, 0..4_u8)
            .prop_map(|(session, request_id)| Op::Unsubscribe { session, request_id }),
        1 => (0..4_u64).prop_map(Op::RemoveSession),
        4 => proptest::collection::vec(arb_room(), 1..4).prop_map(Op::Publish),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn index_agrees_with_brute_force(ops in proptest::collection::vec(arb_op(), 1..80)) {
        let mut index: RoomIndex<(u64, u8)> = RoomIndex::new();
        // The model: (session, request id) → room.
        let mut model: Vec<(u64, u8, Room)> = Vec::new();
        for op in ops {
            match op {
                Op::Subscribe { session, request_id, room } => {
                    let taken = model.iter().any(|(s, r, _)| *s == session && *r == request_id);
                    let got = index.subscribe(
                        session, request_id.to_string().into(), room.clone(), (session, request_id),
                    );
                    prop_assert_eq!(got.is_err(), taken);
                    if !taken {
                        model.push((session, request_id, room));
                    }
                }
                Op::Unsubscribe { session, request_id } => {
                    let before = model.len();
                    model.retain(|(s, r, _)| !(*s == session && *r == request_id));
                    let removed = index.unsubscribe(session, &request_id.to_string());
                    prop_assert_eq!(removed, model.len() < before);
                }
                Op::RemoveSession(session) => {
                    let before = model.len();
                    model.retain(|(s, _, _)| *s != session);
                    prop_assert_eq!(index.remove_session(session), before - model.len());
                }
                Op::Publish(published) => {
                    let mut got = Vec::new();
                    index.for_each_match(&published, |room, session, request_id, handle| {
                        assert_eq!(*handle, (session, request_id.parse::<u8>().unwrap()));
                        got.push((session, request_id.to_string(), room.to_string()));
                    });
                    let mut want: Vec<_> = model
                        .iter()
                        .filter(|(_, _, room)| published.iter().any(|p| p.matches(room)))
                        .map(|(s, r, room)| (*s, r.to_string(), room.to_string()))
                        .collect();
                    got.sort();
                    want.sort();
                    // Sorted equality with no duplicates in `want` also
                    // proves each subscription was called once.
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(index.num_subscriptions(), model.len());
            let distinct: BTreeSet<String> = model.iter().map(|(_, _, r)| r.to_string()).collect();
            prop_assert_eq!(index.num_rooms(), distinct.len());
            prop_assert_eq!(index.rooms().count(), distinct.len());
            for session in 0..4 {
                prop_assert_eq!(
                    index.session_subscriptions(session),
                    model.iter().filter(|(s, _, _)| *s == session).count()
                );
            }
        }
        for session in 0..4 {
            index.remove_session(session);
        }
        prop_assert_eq!(index.debug_node_count(), 0);
        prop_assert_eq!(index.num_rooms(), 0);
        prop_assert!(index.sessions.is_empty());
    }
}

/// A room made by one subscription holds room for that one only: most
/// rooms have a single subscriber, and every idle connection pays for its
/// room's spare slots (issue 13).
#[test]
fn a_new_room_reserves_one_subscription() {
    let mut index: RoomIndex<u32> = RoomIndex::new();
    index
        .subscribe(1, id("r"), room(json!({"target": "t", "room": "1"})), 0)
        .unwrap();
    let mut stack: Vec<&Node<u32>> = index.key_sets.values().collect();
    let mut capacities = Vec::new();
    while let Some(node) = stack.pop() {
        match node {
            Node::Leaf(leaf) => capacities.push(leaf.subscriptions.capacity()),
            Node::Branch(branch) => {
                stack.extend(branch.values.values());
                stack.extend(branch.wildcard.as_deref());
            }
        }
    }
    assert_eq!(capacities, [1]);
}

#[test]
fn retain_session_drops_only_that_sessions_refused_rooms() {
    let mut index = RoomIndex::new();
    sub(
        &mut index,
        1,
        "keep",
        json!({"target": "message", "customer": "1"}),
    );
    sub(
        &mut index,
        1,
        "drop",
        json!({"target": "notes", "user": "a"}),
    );
    sub(
        &mut index,
        2,
        "other",
        json!({"target": "notes", "user": "a"}),
    );
    let notes = room(json!({"target": "notes", "user": "a"}));
    let dropped = index.retain_session(1, |r| *r != notes);
    assert_eq!(dropped, vec![id("drop")]);
    assert_eq!(index.session_subscriptions(1), 1);
    assert_eq!(
        sorted(deliveries(&index, std::slice::from_ref(&notes))),
        vec![(2, "other".to_owned())]
    );
    assert!(index.retain_session(3, |_| false).is_empty());
}
