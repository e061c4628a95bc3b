//! The history streams on their own, and the engine with history: offsets,
//! recovery, bounds, wildcards, dialects, and no publication lost or
//! repeated between recovered and live delivery.

use std::{sync::Arc, time::Duration};

use proptest::prelude::*;
use serde_json::{Value, json, value::RawValue};

use super::*;
use crate::{
    config::{HistoryConfig, HistoryRule},
    protocol::{Dialect, Extended, Legacy, StreamPosition},
    rooms::Room,
    sessions::{Outbox, OutboxReceiver, Outgoing},
};

pub(super) fn room(v: Value) -> Room {
    Room::parse(&v).unwrap()
}

/// `{"chat": "*"}` rooms, each keeping `size` publications for
/// `age_secs`, all within `max_bytes` (the mirror's tests share it).
pub(super) fn config(size: usize, age_secs: u64, max_bytes: usize) -> HistoryConfig {
    HistoryConfig {
        max_bytes,
        persist: false,
        rooms: vec![HistoryRule {
            room: json!({"chat": "*"}),
            size,
            age: Duration::from_secs(age_secs),
        }],
    }
}

/// A publication's data, `{"n": n}`.
pub(super) fn data(n: u64) -> Box<RawValue> {
    serde_json::value::to_raw_value(&json!({"n": n})).unwrap()
}

fn chat(n: u64) -> Room {
    room(json!({"chat": n}))
}

/// Each recovered frame's `n` (see [`data`]).
pub(super) fn ns(recovery: &Recovery) -> Vec<u64> {
    recovery
        .frames
        .iter()
        .map(|f| {
            serde_json::from_str::<Value>(f.data()).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn offsets_count_per_room_and_recovery_returns_what_was_missed_in_order() {
    let mut s = Streams::new(&config(100, 300, 1 << 20)).unwrap();
    let start = s.position(&chat(1), 0).unwrap();
    assert_eq!(start.offset, 0);
    for n in 1..=10 {
        let stamps = s.append(&[chat(1)], &data(n), 0);
        assert_eq!(stamps.rooms.len(), 1);
        assert!(
            stamps.rooms[0]
                .1
                .render("r")
                .contains(&format!(r#""offset":{n},"#))
        );
    }
    // Another room has its own offsets and epoch.
    let other = s.position(&chat(2), 0).unwrap();
    assert_eq!(other.offset, 0);
    assert_ne!(other.epoch, start.epoch);
    let since = StreamPosition {
        offset: 4,
        epoch: start.epoch.clone(),
    };
    let got = s.recover(&chat(1), &since, 100, 0);
    assert!(got.complete);
    assert_eq!(ns(&got), (5..=10).collect::<Vec<_>>());
    // Up to date: complete, nothing to send.
    let now = StreamPosition {
        offset: 10,
        ..since.clone()
    };
    let got = s.recover(&chat(1), &now, 100, 0);
    assert!(got.complete && got.frames.is_empty());
    // More than may be queued, another epoch, a future offset: incomplete
    // and nothing partial.
    for (since, max) in [
        (since.clone(), 5),
        (
            StreamPosition {
                epoch: "other".into(),
                ..since.clone()
            },
            100,
        ),
        (
            StreamPosition {
                offset: 11,
                ..since.clone()
            },
            100,
        ),
    ] {
        let got = s.recover(&chat(1), &since, max, 0);
        assert!(!got.complete && got.frames.is_empty(), "{since:?}");
    }
    // A room no entry covers keeps nothing.
    assert!(s.position(&room(json!({"news": 1})), 0).is_none());
    assert!(
        s.append(&[room(json!({"news": 1}))], &data(1), 0)
            .is_empty()
    );
}

#[test]
fn a_gap_beyond_size_or_age_is_incomplete() {
    let mut s = Streams::new(&config(5, 10, 1 << 20)).unwrap();
    let epoch = s.position(&chat(1), 0).unwrap().epoch;
    for n in 1..=8 {
        s.append(&[chat(1)], &data(n), 0);
    }
    let at = |offset| StreamPosition {
        offset,
        epoch: epoch.clone(),
    };
    // 1..=3 were dropped for size: a client at 2 missed 3, gone.
    assert!(!s.recover(&chat(1), &at(2), 100, 0).complete);
    let got = s.recover(&chat(1), &at(3), 100, 0);
    assert!(got.complete);
    assert_eq!(ns(&got), vec![4, 5, 6, 7, 8]);
    // Eleven seconds later every one of them is past its age.
    assert!(!s.recover(&chat(1), &at(3), 100, 11_000).complete);
    assert!(s.recover(&chat(1), &at(8), 100, 11_000).complete);
    assert_eq!(s.page(&chat(1), 10, 11_000).unwrap().publications.len(), 0);
}

#[test]
fn wildcards_recover_every_matching_room_in_publish_order_once() {
    let mut s = Streams::new(&config(100, 300, 1 << 20)).unwrap();
    let all = room(json!({"chat": "*"}));
    let start = s.position(&all, 0).unwrap();
    s.append(&[chat(1)], &data(1), 0);
    s.append(&[chat(2)], &data(2), 0);
    // One publish to two rooms is one publication.
    s.append(&[chat(1), chat(2)], &data(3), 0);
    // A wildcard publish reaches the rooms that have streams.
    s.append(std::slice::from_ref(&all), &data(4), 0);
    s.append(&[chat(1)], &data(5), 0);
    let got = s.recover(&all, &start, 100, 0);
    assert!(got.complete);
    assert_eq!(ns(&got), vec![1, 2, 3, 4, 5]);
    // Numbered by the host sequence, as a wildcard subscription's live
    // messages are.
    assert!(got.frames[4].render("r").contains(r#""offset":5,"#));
    let since = StreamPosition {
        offset: 3,
        ..start.clone()
    };
    assert_eq!(ns(&s.recover(&all, &since, 100, 0)), vec![4, 5]);
    // Two rooms' streams hold publication 3 and 4: still 2 missed, not 3.
    assert!(s.recover(&all, &since, 2, 0).complete);
    assert!(!s.recover(&all, &since, 1, 0).complete);
}

#[test]
fn memory_stays_bounded_with_many_rooms_and_dropped_rooms_change_epoch() {
    let max = 1 << 20;
    let mut s = Streams::new(&config(10, 300, max)).unwrap();
    let all = room(json!({"chat": "*"}));
    let wildcard = s.position(&all, 0).unwrap();
    let first = s.position(&chat(0), 0).unwrap();
    let payload = serde_json::value::to_raw_value(&"x".repeat(200)).unwrap();
    let mut peak = 0;
    for n in 0..20_000 {
        s.append(&[chat(n)], &payload, 0);
        peak = peak.max(s.bytes());
    }
    assert!(peak <= max, "{peak} > {max}");
    // The bytes counted cover each publication's frame and bookkeeping.
    assert!(s.bytes() > max - (STREAM_OVERHEAD + 10 * (ENTRY_OVERHEAD + 300)));
    // Room 0 was dropped long ago: its clients are told, as are wildcard
    // clients from before the drop.
    let since = StreamPosition { offset: 1, ..first };
    assert!(!s.recover(&chat(0), &since, 100, 0).complete);
    assert!(!s.recover(&all, &wildcard, 100_000, 0).complete);
    assert_ne!(s.position(&chat(0), 0).unwrap().epoch, since.epoch);
}

#[test]
fn subscribing_to_many_empty_rooms_pushes_out_no_published_history() {
    let max = 1 << 20;
    let mut s = Streams::new(&config(10, 300, max)).unwrap();
    let all = room(json!({"chat": "*"}));
    let wildcard = s.position(&all, 0).unwrap();
    let kept = s.position(&chat(0), 0).unwrap();
    s.append(&[chat(0)], &data(1), 0);
    // Far more empty rooms than fit: they push each other out.
    let first_empty = s.position(&chat(1), 0).unwrap();
    for n in 2..20_000 {
        s.position(&chat(n), 0);
        assert!(s.bytes() <= max);
    }
    let since = StreamPosition { offset: 0, ..kept };
    assert_eq!(ns(&s.recover(&chat(0), &since, 100, 0)), vec![1]);
    assert_eq!(ns(&s.recover(&all, &wildcard, 100, 0)), vec![1]);
    // The oldest empty room went, and its clients are told.
    let since = StreamPosition {
        offset: 0,
        ..first_empty
    };
    assert!(!s.recover(&chat(1), &since, 100, 0).complete);
}

#[test]
fn a_snapshot_brings_back_epochs_and_publications_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SNAPSHOT_FILE);
    let mut s = Streams::new(&config(100, 300, 1 << 20)).unwrap();
    let all = room(json!({"chat": "*"}));
    let wildcard = s.position(&all, 0).unwrap();
    let start = s.position(&chat(1), 0).unwrap();
    for n in 1..=5 {
        s.append(&[chat(1)], &data(n), 0);
    }
    s.save(&path).unwrap();
    let before = s.bytes();

    let mut back = Streams::new(&config(100, 300, 1 << 20)).unwrap();
    assert_eq!(back.restore(&path, 0).unwrap(), 1);
    assert!(
        !path.exists(),
        "read once: a crash later must not read it again"
    );
    assert_eq!(back.bytes(), before);
    let got = back.recover(&chat(1), &StreamPosition { offset: 2, ..start }, 100, 0);
    assert!(got.complete);
    assert_eq!(ns(&got), vec![3, 4, 5]);
    assert_eq!(
        ns(&back.recover(&all, &wildcard, 100, 0)),
        vec![1, 2, 3, 4, 5]
    );
    // Numbering goes on where it stopped.
    assert!(
        back.append(&[chat(1)], &data(6), 0).rooms[0]
            .1
            .render("r")
            .contains(r#""offset":6,"#)
    );

    // No file: nothing. A file that is not a snapshot: refused, removed.
    assert_eq!(back.restore(&path, 0).unwrap(), 0);
    std::fs::write(&path, b"{not json").unwrap();
    let e = back.restore(&path, 0).unwrap_err();
    assert!(matches!(e, SnapshotError::Format { .. }), "{e}");
    assert!(!path.exists());
}

// ---- the engine -------------------------------------------------------

fn engine(size: usize) -> MemoryEngine {
    let streams = Streams::new(&config(size, 300, 1 << 24)).unwrap();
    MemoryEngine::with_history(Some(Box::new(streams)))
}

/// What a client saw: room messages' `n` and `offset`, and other frames.
#[derive(Debug, Default)]
struct Seen {
    messages: Vec<(u64, Option<u64>)>,
    replies: Vec<Value>,
}

fn drain(rx: &mut OutboxReceiver, seen: &mut Seen) {
    while let Some(item) = rx.try_recv() {
        match item {
            Outgoing::Publish(frame, id) => {
                let v: Value = serde_json::from_str(&frame.render(&id)).unwrap();
                seen.messages
                    .push((v["data"]["n"].as_u64().unwrap(), v["offset"].as_u64()));
            }
            Outgoing::Reply(text) | Outgoing::Text(text) => {
                seen.replies.push(serde_json::from_str(&text).unwrap());
            }
        }
    }
}

fn subscribe(
    engine: &MemoryEngine,
    session: u64,
    room: &Room,
    dialect: &'static dyn Dialect,
    since: Option<StreamPosition>,
) -> (Outbox, OutboxReceiver) {
    let (outbox, rx) = Outbox::new(100_000);
    engine
        .subscribe(Subscription {
            session,
            request_id: Arc::from("s"),
            room: room.clone(),
            outbox: outbox.clone(),
            dialect,
            since,
            max_recovered: 100_000,
        })
        .unwrap();
    (outbox, rx)
}

fn position(reply: &Value) -> StreamPosition {
    StreamPosition::from_json(reply).unwrap()
}

#[test]
fn extended_clients_get_offsets_and_recover_legacy_clients_see_neither() {
    let e = engine(100);
    let (_o, mut rx) = subscribe(&e, 1, &chat(1), &Extended, None);
    let (_l, mut legacy_rx) = subscribe(&e, 2, &chat(1), &Legacy, None);
    for n in 1..=3 {
        e.publish(&[chat(1)], &data(n));
    }
    let (mut seen, mut legacy) = (Seen::default(), Seen::default());
    drain(&mut rx, &mut seen);
    drain(&mut legacy_rx, &mut legacy);
    assert_eq!(seen.replies[0]["code"], "success");
    assert_eq!(seen.replies[0]["offset"], 0);
    assert_eq!(
        seen.messages,
        vec![(1, Some(1)), (2, Some(2)), (3, Some(3))]
    );
    // high-templar's frames exactly: no offset, no epoch, no requestId on
    // the reply.
    assert_eq!(legacy.replies, vec![json!({"code": "success"})]);
    assert_eq!(legacy.messages, vec![(1, None), (2, None), (3, None)]);

    let mut since = position(&seen.replies[0]);
    since.offset = 1;
    e.remove_session(1);
    e.publish(&[chat(1)], &data(4));
    let (_o, mut rx) = subscribe(&e, 1, &chat(1), &Extended, Some(since.clone()));
    e.publish(&[chat(1)], &data(5));
    let mut seen = Seen::default();
    drain(&mut rx, &mut seen);
    assert_eq!(seen.replies[0]["offset"], 4);
    assert_eq!(
        seen.replies[1],
        json!({"type": "recovered", "requestId": "s", "complete": true})
    );
    assert_eq!(
        seen.messages,
        vec![(2, Some(2)), (3, Some(3)), (4, Some(4)), (5, Some(5))]
    );
    // A legacy client's `since` is ignored: nothing recovered, no frame.
    let (_l, mut legacy_rx) = subscribe(&e, 3, &chat(1), &Legacy, Some(since));
    let mut legacy = Seen::default();
    drain(&mut legacy_rx, &mut legacy);
    assert_eq!(legacy.replies, vec![json!({"code": "success"})]);
    assert!(legacy.messages.is_empty());
}

#[test]
fn a_room_without_history_answers_since_with_incomplete() {
    let e = engine(100);
    let news = room(json!({"news": 1}));
    let since = StreamPosition {
        offset: 3,
        epoch: "e".into(),
    };
    let (_o, mut rx) = subscribe(&e, 1, &news, &Extended, Some(since));
    e.publish(std::slice::from_ref(&news), &data(1));
    let mut seen = Seen::default();
    drain(&mut rx, &mut seen);
    assert_eq!(
        seen.replies[0],
        json!({"code": "success", "requestId": "s"})
    );
    assert_eq!(seen.replies[1]["complete"], false);
    assert_eq!(seen.messages, vec![(1, None)]);
}

/// A client's view across reconnects: it remembers the last offset it saw
/// and, each time it comes back, asks for what followed.
struct Reconnecting {
    rx: OutboxReceiver,
    _outbox: Outbox,
    epoch: Arc<str>,
    last: u64,
    got: Vec<u64>,
    complete: bool,
}

impl Reconnecting {
    fn new(e: &MemoryEngine) -> Self {
        let (outbox, rx) = subscribe(e, 1, &chat(1), &Extended, None);
        let mut client = Reconnecting {
            rx,
            _outbox: outbox,
            epoch: "".into(),
            last: 0,
            got: Vec::new(),
            complete: true,
        };
        client.read();
        client
    }

    fn read(&mut self) {
        let mut seen = Seen::default();
        drain(&mut self.rx, &mut seen);
        for reply in &seen.replies {
            if let Some(epoch) = reply["epoch"].as_str() {
                self.epoch = epoch.into();
            }
            if reply["complete"] == false {
                self.complete = false;
            }
        }
        for (n, offset) in seen.messages {
            self.got.push(n);
            self.last = offset.unwrap();
        }
    }

    fn reconnect(&mut self, e: &MemoryEngine) {
        e.remove_session(1);
        let since = StreamPosition {
            offset: self.last,
            epoch: self.epoch.clone(),
        };
        let (outbox, rx) = subscribe(e, 1, &chat(1), &Extended, Some(since));
        self.rx = rx;
        self._outbox = outbox;
    }
}

#[derive(Debug, Clone)]
enum Op {
    Publish,
    Read,
    Reconnect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Publish),
        2 => Just(Op::Read),
        1 => Just(Op::Reconnect),
    ]
}

/// Publication `n` (from 1) and the data it carries agree, so the client's
/// list must be exactly 1..=N.
fn exactly_once(got: &[u64], published: u64) -> Result<(), TestCaseError> {
    let want: Vec<u64> = (1..=published).collect();
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        let around = |v: &[u64]| v[i.saturating_sub(3)..(i + 3).min(v.len())].to_vec();
        prop_assert!(
            false,
            "{} received for {published} published; from #{i}: got {:?}, want {:?}",
            got.len(),
            around(got),
            around(&want)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any order of publishes, reads and reconnects: with a history large
    /// enough, the client ends with every publication exactly once, in
    /// order; with a small one it is told when it lost some, and never
    /// sees one twice or out of order.
    #[test]
    fn reconnects_in_any_order_lose_and_repeat_nothing(ops in proptest::collection::vec(op(), 1..120), size in 1usize..40) {
        let e = engine(size);
        let mut client = Reconnecting::new(&e);
        let mut published = 0;
        for op in ops {
            match op {
                Op::Publish => {
                    published += 1;
                    e.publish(&[chat(1)], &data(published));
                }
                Op::Read => client.read(),
                Op::Reconnect => {
                    client.read();
                    client.reconnect(&e);
                }
            }
        }
        client.read();
        prop_assert!(client.got.windows(2).all(|w| w[0] < w[1]), "{:?}", client.got);
        if client.complete {
            exactly_once(&client.got, published)?;
        }
        if size >= 120 {
            prop_assert!(client.complete);
        }
    }

    /// The same with the publisher on its own thread, so publishes land
    /// anywhere inside a reconnect: the locks, not the schedule, keep
    /// recovered and live messages apart.
    #[test]
    fn concurrent_publishes_during_recovery_lose_and_repeat_nothing(pauses in proptest::collection::vec(0u32..200, 1..8)) {
        let e = Arc::new(engine(100_000));
        let total = 5_000;
        let mut client = Reconnecting::new(&e);
        let publisher = {
            let e = e.clone();
            std::thread::spawn(move || {
                for n in 1..=total {
                    e.publish(&[chat(1)], &data(n));
                }
            })
        };
        // Reconnect again and again while the publisher runs, pausing
        // for the case's lengths in turn.
        for spin in pauses.iter().cycle() {
            if publisher.is_finished() {
                break;
            }
            for _ in 0..*spin {
                std::hint::spin_loop();
            }
            client.read();
            client.reconnect(&e);
        }
        publisher.join().unwrap();
        client.read();
        prop_assert!(client.complete);
        exactly_once(&client.got, total)?;
    }
}

#[test]
fn forgetting_the_history_makes_every_earlier_position_incomplete() {
    let mut s = Streams::new(&config(100, 300, 1 << 20)).unwrap();
    let room = s.position(&chat(1), 0).unwrap();
    let wild = s.position(&room_json_wild(), 0).unwrap();
    s.append(&[chat(1)], &data(1), 0);
    s.forget();
    assert_eq!(s.bytes(), 0);
    for (r, since) in [(chat(1), room), (room_json_wild(), wild)] {
        let got = s.recover(&r, &since, 100, 0);
        assert!(!got.complete, "{r:?}");
        assert!(got.frames.is_empty());
    }
    // What is recorded after is recovered as before.
    let fresh = s.position(&chat(1), 0).unwrap();
    s.append(&[chat(1)], &data(2), 0);
    let got = s.recover(&chat(1), &fresh, 100, 0);
    assert!(got.complete);
    assert_eq!(ns(&got), vec![2]);
}

fn room_json_wild() -> Room {
    room(json!({"chat": "*"}))
}
