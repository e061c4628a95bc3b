//! Room matching: what 10,000 subscriptions over 1,000 wildcard patterns
//! add to the cost of one publish (target: ≤ 2 µs).
//!
//! Every pattern has the published room's key set, so a publish walks the
//! same trie as they do (a different key set would not even be looked at).
//! Each pattern has one `"*"` and two concrete values; none matches the
//! published room, so the publish still reaches exactly its one
//! subscriber and the difference between the two cases is pure index
//! overhead. A third case publishes to a room that 10 patterns' 100
//! subscriptions match, for the cost per delivery.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use modhost::rooms::{Room, RoomIndex};
use serde_json::json;

fn room(value: serde_json::Value) -> Room {
    Room::parse(&value).expect("valid room")
}

/// Pattern `j` of 1,000: the wildcard moves between the three keys.
fn pattern(j: usize) -> Room {
    let (t, c, u) = (format!("t{}", j % 10), format!("c{j}"), format!("u{j}"));
    match j % 3 {
        0 => room(json!({"target": "*", "customer": c, "user": u})),
        1 => room(json!({"target": t, "customer": "*", "user": u})),
        _ => room(json!({"target": t, "customer": c, "user": "*"})),
    }
}

fn index(with_patterns: bool) -> RoomIndex<u32> {
    let mut index = RoomIndex::new();
    let published = room(json!({"target": "t1", "customer": "pub", "user": "pub"}));
    index
        .subscribe(0, "1".into(), published, 0)
        .expect("subscribe");
    if with_patterns {
        for s in 0..10_000u32 {
            let session = u64::from(s) + 1;
            index
                .subscribe(session, "1".into(), pattern(s as usize % 1000), s)
                .expect("subscribe");
        }
        assert_eq!(index.num_subscriptions(), 10_001);
        assert_eq!(index.num_rooms(), 1_001);
    }
    index
}

fn publish(index: &RoomIndex<u32>, rooms: &[Room]) -> u32 {
    let mut n = 0u32;
    index.for_each_match(rooms, |_, _, _, handle| {
        n += 1;
        black_box(handle);
    });
    n
}

fn bench(c: &mut Criterion) {
    let published = [room(
        json!({"target": "t1", "customer": "pub", "user": "pub"}),
    )];
    let empty = index(false);
    let loaded = index(true);
    assert_eq!(publish(&empty, &published), 1);
    assert_eq!(publish(&loaded, &published), 1);
    let mut group = c.benchmark_group("room_match");
    group.bench_function("publish_1_sub", |b| {
        b.iter(|| publish(&empty, black_box(&published)))
    });
    group.bench_function("publish_1_sub_plus_10k_subs_on_1k_wildcard_patterns", |b| {
        b.iter(|| publish(&loaded, black_box(&published)))
    });
    // Only pattern 1 ({t1, "*", u1}) matches: its 10 subscriptions.
    let hits = [room(
        json!({"target": "t1", "customer": "c1", "user": "u1"}),
    )];
    let n = publish(&loaded, &hits);
    group.bench_function(format!("publish_{n}_matching_subs_in_10k"), |b| {
        b.iter(|| publish(&loaded, black_box(&hits)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
