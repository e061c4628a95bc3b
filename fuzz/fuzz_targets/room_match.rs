//! Room objects and matching: every JSON value in the input is parsed as a
//! room; the first half subscribe to a `RoomIndex`, the rest are published.
//! The index must deliver exactly what a brute-force `Room::matches` scan
//! delivers, once per subscription, and `permits`/`matches` keep their laws.
#![no_main]

use std::{collections::BTreeSet, sync::Arc};

use libfuzzer_sys::fuzz_target;
use modhost::rooms::{Room, RoomIndex};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let values: Vec<Value> = serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .take(64)
        .collect();
    let rooms: Vec<Room> = values.iter().filter_map(|v| Room::parse(v).ok()).collect();
    for a in &rooms {
        assert!(a.permits(a) && a.matches(a));
        for b in &rooms {
            assert_eq!(a.matches(b), b.matches(a), "matches is symmetric");
            if a.permits(b) {
                assert!(a.matches(b), "permits implies matches");
            }
            if a == b {
                assert_eq!(a.to_string(), b.to_string());
            }
        }
    }
    let (subs, published) = rooms.split_at(rooms.len() / 2);
    let mut index: RoomIndex<usize> = RoomIndex::new();
    for (i, room) in subs.iter().enumerate() {
        // Two sessions, so removal by session is exercised too.
        let session = (i % 2) as u64;
        let id: Arc<str> = i.to_string().into();
        index
            .subscribe(session, id, room.clone(), i)
            .expect("fresh request id");
    }
    let check = |index: &RoomIndex<usize>, live: &dyn Fn(usize) -> bool| {
        let mut got = Vec::new();
        index.for_each_match(published, |_, _, _, &i| got.push(i));
        let unique: BTreeSet<usize> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "a subscription got a publish twice");
        let want: BTreeSet<usize> = subs
            .iter()
            .enumerate()
            .filter(|(i, s)| live(*i) && published.iter().any(|p| p.matches(s)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(unique, want);
    };
    check(&index, &|_| true);
    index.remove_session(1);
    check(&index, &|i| i % 2 == 0);
    index.remove_session(0);
    assert_eq!(index.num_subscriptions(), 0);
    assert_eq!(index.num_rooms(), 0);
});
