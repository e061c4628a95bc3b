//! The mirror's numbering and when it calls a recovery complete.

use std::sync::Arc;

use serde_json::json;

use super::Mirror;
use crate::{
    fanout::{
        History,
        tests::{config, data, ns, room},
    },
    protocol::StreamPosition,
    rooms::Room,
};

const EPOCH: &str = "00000000000000aa";

fn chat(c: &str) -> Room {
    room(json!({"chat": c}))
}

/// A mirror of `{"chat": "*"}` rooms, keeping `size` each for an hour
/// within `max_bytes`, that has read the stream `EPOCH` from its start.
fn mirror(size: usize, max_bytes: usize) -> Mirror {
    let mut m = Mirror::new(&config(size, 3600, max_bytes)).unwrap();
    assert_eq!(m.resync(EPOCH, 0), Some(1));
    m
}

fn at(offset: u64) -> StreamPosition {
    StreamPosition {
        offset,
        epoch: Arc::from(EPOCH),
    }
}

/// The publications recovered after `since` (each one's `n`, which the
/// tests make its sequence), or `None` when incomplete.
fn recovered(m: &mut Mirror, r: &Room, since: u64) -> Option<Vec<u64>> {
    let recovery = m.recover(r, &at(since), 100, 0);
    recovery.complete.then(|| ns(&recovery))
}

#[test]
fn publications_are_numbered_by_the_stream_and_recovered_after_a_position() {
    let mut m = mirror(10, 1 << 20);
    let a = chat("a");
    assert_eq!(m.position(&a, 0).unwrap().offset, 0);
    m.append_at(std::slice::from_ref(&a), &data(1), 1, 0)
        .unwrap();
    m.append_at(&[chat("b")], &data(2), 2, 0).unwrap();
    let stamps = m
        .append_at(std::slice::from_ref(&a), &data(3), 3, 0)
        .unwrap();
    assert_eq!(stamps.seq, 3);
    assert_eq!(recovered(&mut m, &a, 0), Some(vec![1, 3]));
    assert_eq!(recovered(&mut m, &a, 1), Some(vec![3]));
    assert_eq!(recovered(&mut m, &a, 3), Some(vec![]));
    // The position is the last sequence read, whatever room it was in.
    assert_eq!(m.position(&a, 0).unwrap().offset, 3);
    // A wildcard gets both rooms, each publication once, in order.
    assert_eq!(recovered(&mut m, &chat("*"), 0), Some(vec![1, 2, 3]));
}

#[test]
fn a_redelivered_sequence_is_not_applied_twice() {
    let mut m = mirror(10, 1 << 20);
    m.append_at(&[chat("a")], &data(1), 1, 0).unwrap();
    assert!(m.append_at(&[chat("a")], &data(1), 1, 0).is_none());
    assert_eq!(recovered(&mut m, &chat("a"), 0), Some(vec![1]));
}

#[test]
fn a_position_before_what_the_room_dropped_is_incomplete() {
    let mut m = mirror(2, 1 << 20);
    for seq in 1..=3 {
        m.append_at(&[chat("a")], &data(seq), seq, 0).unwrap();
    }
    assert_eq!(recovered(&mut m, &chat("a"), 0), None);
    assert_eq!(recovered(&mut m, &chat("a"), 1), Some(vec![2, 3]));
    // From the future, or another stream: incomplete.
    assert_eq!(recovered(&mut m, &chat("a"), 4), None);
    let other = StreamPosition {
        offset: 1,
        epoch: Arc::from("other"),
    };
    assert!(!m.recover(&chat("a"), &other, 100, 0).complete);
}

#[test]
fn what_the_stream_held_at_start_is_recovered_only_from_its_first_publication_per_room() {
    let mut m = mirror(10, 1 << 20);
    // A new stream whose sequences 1..=4 were published before this host
    // read it: rooms' older publications may be gone.
    assert_eq!(m.resync("00000000000000bb", 4), Some(1));
    let pos = |offset| StreamPosition {
        offset,
        epoch: Arc::from("00000000000000bb"),
    };
    m.append_at(&[chat("a")], &data(3), 3, 0).unwrap();
    m.append_at(&[chat("a")], &data(4), 4, 0).unwrap();
    assert!(m.recover(&chat("a"), &pos(2), 100, 0).complete);
    assert!(!m.recover(&chat("a"), &pos(1), 100, 0).complete);
    // A room with nothing here may have had publications before 4.
    assert!(!m.recover(&chat("b"), &pos(3), 100, 0).complete);
    assert!(m.recover(&chat("b"), &pos(4), 100, 0).complete);
}

#[test]
fn an_outage_makes_earlier_positions_incomplete_and_later_ones_complete() {
    let mut m = mirror(10, 1 << 20);
    m.append_at(&[chat("a")], &data(1), 1, 0).unwrap();
    let before = m.position(&chat("a"), 0).unwrap().offset;
    m.forget();
    m.append_at(&[chat("a")], &data(2), 2, 0).unwrap();
    assert_eq!(recovered(&mut m, &chat("a"), before), None);
    assert_eq!(recovered(&mut m, &chat("a"), 2), Some(vec![]));
    // Delivered here alone while the link was down: no offset, and no
    // position up to now can be recovered.
    assert!(m.append(&[chat("a")], &data(3), 0).is_empty());
    assert_eq!(recovered(&mut m, &chat("a"), 2), None);
    // Reading the same stream again after a restart forgets likewise and
    // goes on after the last sequence read.
    m.append_at(&[chat("a")], &data(3), 3, 0).unwrap();
    assert_eq!(m.resync(EPOCH, 3), Some(4));
    assert_eq!(recovered(&mut m, &chat("a"), 3), None);
}

#[test]
fn rooms_dropped_to_stay_within_max_bytes_are_incomplete_from_before() {
    let mut m = mirror(100, 1500);
    for seq in 1..=20 {
        let name = if seq % 2 == 0 { "a" } else { "b" };
        m.append_at(&[chat(name)], &data(seq), seq, 0).unwrap();
    }
    assert!(m.bytes() <= 1500);
    assert_eq!(recovered(&mut m, &chat("*"), 0), None);
}

#[test]
fn a_publication_to_every_room_is_recorded_for_the_rooms_subscribed_here_only() {
    let mut m = mirror(10, 1 << 20);
    let since = m.position(&chat("a"), 0).unwrap().offset;
    let stamps = m.append_at(&[chat("*")], &data(1), 1, 0).unwrap();
    // Numbered for the room subscribed here, which recovers it.
    assert_eq!(stamps.rooms.len(), 1);
    assert_eq!(recovered(&mut m, &chat("a"), since), Some(vec![1]));
    // Another room may have been reached too, and this host kept nothing
    // of it: from before, incomplete; from after, complete.
    assert_eq!(recovered(&mut m, &chat("b"), since), None);
    assert_eq!(recovered(&mut m, &chat("b"), 1), Some(vec![]));
}

#[test]
fn rooms_only_subscribed_to_are_dropped_before_any_history() {
    let mut m = mirror(100, 4000);
    m.append_at(&[chat("kept")], &data(1), 1, 0).unwrap();
    for i in 0..100 {
        m.position(&chat(&format!("empty{i}")), 0);
    }
    assert!(m.bytes() <= 4000);
    assert_eq!(recovered(&mut m, &chat("kept"), 0), Some(vec![1]));
}
