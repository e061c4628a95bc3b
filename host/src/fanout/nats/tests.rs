//! What arrives from NATS: each publication delivered once per matching
//! subscription, never the host's own, nothing from a malformed message.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{Shared, Status};
use crate::{
    fanout::{FanoutEngine, MemoryEngine, Subscription},
    protocol::Legacy,
    rooms::Room,
    sessions::{Outbox, OutboxReceiver, Outgoing},
};

fn shared() -> Shared {
    Shared {
        local: MemoryEngine::default(),
        origin: "here".into(),
        seen: Mutex::default(),
        status: Status::default(),
    }
}

fn subscribe(shared: &Shared, room: Value) -> OutboxReceiver {
    let (outbox, rx) = Outbox::new(1000);
    shared
        .local
        .subscribe(Subscription {
            session: 1,
            request_id: Arc::from("s"),
            room: Room::parse(&room).unwrap(),
            outbox,
            dialect: &Legacy,
            since: None,
            max_recovered: 0,
        })
        .unwrap();
    rx
}

/// The publications queued, by their `n`.
fn received(rx: &mut OutboxReceiver) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(item) = rx.try_recv() {
        if let Outgoing::Publish(frame, _) = item {
            let data: Value = serde_json::from_str(frame.data()).unwrap();
            out.push(data["n"].as_u64().unwrap());
        }
    }
    out
}

fn wire(origin: &str, seq: u64, rooms: Value, n: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"o": origin, "n": seq, "r": rooms, "d": {"n": n}})).unwrap()
}

#[test]
fn a_publication_to_several_rooms_arriving_on_each_subject_is_delivered_once() {
    let s = shared();
    let mut rx = subscribe(&s, json!({"chat": "*"}));
    let both = json!([{"chat": 1}, {"chat": 2}]);
    // Once per subject it was sent on: the second copy is dropped.
    s.receive(&wire("there", 7, both.clone(), 1));
    s.receive(&wire("there", 7, both.clone(), 1));
    // Another publication (next sequence) is not.
    s.receive(&wire("there", 8, both, 2));
    // The same sequence from another host is another publication.
    s.receive(&wire("elsewhere", 7, json!([{"chat": 1}, {"chat": 3}]), 3));
    assert_eq!(received(&mut rx), vec![1, 2, 3]);
}

#[test]
fn a_publication_matching_two_subjects_of_this_host_is_delivered_once() {
    let s = shared();
    let mut concrete = subscribe(&s, json!({"chat": 1}));
    // One copy for the concrete room's subject, one for the wildcard's.
    s.receive(&wire("there", 1, json!([{"chat": 1}]), 1));
    s.receive(&wire("there", 1, json!([{"chat": 1}]), 1));
    assert_eq!(received(&mut concrete), vec![1]);
}

#[test]
fn own_and_malformed_messages_are_not_delivered() {
    let s = shared();
    let mut rx = subscribe(&s, json!({"chat": 1}));
    s.receive(&wire("here", 1, json!([{"chat": 1}]), 1));
    s.receive(b"not json");
    s.receive(&wire("there", 2, json!([["not", "a", "room"]]), 2));
    s.receive(&wire("there", 3, json!([{"chat": 1}]), 3));
    assert_eq!(received(&mut rx), vec![3]);
}

#[test]
fn the_seen_set_forgets_the_oldest_past_its_bound() {
    let mut seen = super::Seen::default();
    for n in 0..=super::SEEN as u64 {
        assert!(seen.first(("a".into(), n)));
    }
    assert!(!seen.first(("a".into(), super::SEEN as u64)));
    // The first one fell out: offered again, it counts as new.
    assert!(seen.first(("a".into(), 0)));
    assert!(seen.set.len() <= super::SEEN + 1);
}
