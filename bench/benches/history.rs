//! Room history (issue 18): what recording each publication adds to a
//! publish, per delivery, and how long a subscribe with `since` takes to
//! queue 1,000 missed publications. The engine alone, in process: no
//! sockets, so the difference between history off and on is the
//! engine's own work (the network's share is in `bench/run.sh history`).
//!
//! Each publish goes to one room with 100 `modhost.v1` subscribers, whose
//! outboxes are emptied after every publish (the writer's dequeue, not its
//! rendering).

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use modhost::{
    config::{HistoryConfig, HistoryRule},
    fanout::{FanoutEngine, History, MemoryEngine, Streams, Subscription},
    protocol::{Extended, StreamPosition},
    rooms::Room,
    sessions::{Outbox, OutboxReceiver},
};
use serde_json::{json, value::RawValue};

const SUBSCRIBERS: u64 = 100;

fn room(n: u64) -> Room {
    Room::parse(&json!({"target": "bench", "room": n})).expect("valid room")
}

fn engine(history: bool) -> MemoryEngine {
    let config = HistoryConfig {
        rooms: vec![HistoryRule {
            room: json!({"target": "bench", "room": "*"}),
            size: 1000,
            age: Duration::from_secs(600),
        }],
        ..HistoryConfig::default()
    };
    let streams = history
        .then(|| Streams::new(&config))
        .flatten()
        .map(|s| Box::new(s) as Box<dyn History>);
    MemoryEngine::with_history(streams)
}

fn subscribe(
    engine: &MemoryEngine,
    session: u64,
    room: &Room,
    since: Option<StreamPosition>,
) -> OutboxReceiver {
    let (outbox, rx) = Outbox::new(100_000);
    engine
        .subscribe(Subscription {
            session,
            request_id: Arc::from("1"),
            room: room.clone(),
            outbox,
            dialect: &Extended,
            since,
            max_recovered: 100_000,
        })
        .expect("subscribe");
    rx
}

fn drain(rxs: &mut [OutboxReceiver]) -> usize {
    let mut n = 0;
    for rx in rxs {
        while let Some(item) = rx.try_recv() {
            black_box(item);
            n += 1;
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let data: Box<RawValue> =
        serde_json::value::to_raw_value(&json!({"text": "a message of some 40 bytes"})).unwrap();
    let mut group = c.benchmark_group("history");
    for (name, history) in [("off", false), ("on", true)] {
        let e = engine(history);
        let mut rxs: Vec<OutboxReceiver> = (0..SUBSCRIBERS)
            .map(|s| subscribe(&e, s, &room(0), None))
            .collect();
        drain(&mut rxs);
        group.bench_function(
            format!("publish_to_{SUBSCRIBERS}_subscribers_{name}"),
            |b| {
                b.iter(|| {
                    e.publish(black_box(&[room(0)]), &data);
                    drain(&mut rxs)
                })
            },
        );
    }
    // A client 1,000 publications behind subscribes with `since`: the
    // reply, 1,000 frames and `recovered` queued, then read.
    let e = engine(true);
    let mut rx = subscribe(&e, 0, &room(1), None);
    drain(std::slice::from_mut(&mut rx));
    let start = e.history(&room(1), 1).expect("a stream").position;
    for _ in 0..1000 {
        e.publish(&[room(1)], &data);
    }
    e.remove_session(0);
    group.bench_function("subscribe_since_1000_missed", |b| {
        b.iter(|| {
            let mut rx = subscribe(&e, 1, &room(1), Some(start.clone()));
            let n = drain(std::slice::from_mut(&mut rx));
            e.remove_session(1);
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
