//! Retention: what `[[history.rooms]]` keeps, the same for both histories
//! ([`Streams`](super::Streams) on a host alone, the cluster's mirror in
//! `nats::mirror`): which rooms keep history ([`Rules`]), and one room's
//! publications bounded by its entry's `size` and `age` ([`Kept`]). Each
//! history numbers and drops whole rooms its own way; what a room keeps,
//! and how many bytes that counts as against `max_bytes`, is decided here
//! once, so a room is bounded alike with or without `[cluster]`.
//!
//! Bytes are counted as each publication's shared frame plus
//! [`ENTRY_OVERHEAD`], and each room's [`STREAM_OVERHEAD`] plus its own
//! text, so many small rooms are bounded as well as a few large ones.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::{config::HistoryConfig, protocol::PublishFrame, rooms::Room};

use super::history::{Recorded, Recovery};

/// Bookkeeping counted per publication: the entry, its `VecDeque` slot and
/// the frame's `Arc` header.
pub const ENTRY_OVERHEAD: usize = 64;
/// Bookkeeping counted per room: its stream, map slots and epoch, plus
/// the room's own text.
pub const STREAM_OVERHEAD: usize = 256;

/// A `[[history.rooms]]` entry, parsed.
pub(super) struct Rule {
    room: Room,
    size: usize,
    age_ms: u64,
}

/// The `[[history.rooms]]` entries, in order: the first that permits a
/// room is its rule.
pub(super) struct Rules(Vec<Rule>);

impl Rules {
    /// `config`'s rooms; `None` when it names none. Patterns that are not
    /// rooms are skipped with a warning (config validation has already
    /// refused what it can).
    pub(super) fn new(config: &HistoryConfig) -> Option<Rules> {
        let rules: Vec<Rule> = config
            .rooms
            .iter()
            .filter_map(|r| match Room::parse(&r.room) {
                Ok(room) => Some(Rule {
                    room,
                    size: r.size.max(1),
                    age_ms: u64::try_from(r.age.as_millis()).unwrap_or(u64::MAX),
                }),
                Err(e) => {
                    tracing::warn!(room = %r.room, "history: not a room pattern, skipped: {e}");
                    None
                }
            })
            .collect();
        (!rules.is_empty()).then_some(Rules(rules))
    }

    /// The rule of concrete `room`, if one covers it.
    pub(super) fn rule(&self, room: &Room) -> Option<&Rule> {
        self.0.iter().find(|r| r.room.permits(room))
    }

    /// Whether publications that `room` (possibly with `"*"`) receives
    /// can be kept: a rule overlaps it.
    pub(super) fn covers(&self, room: &Room) -> bool {
        if room.has_wildcard() {
            self.0.iter().any(|r| r.room.matches(room))
        } else {
            self.rule(room).is_some()
        }
    }

    /// The concrete rooms a publish to `rooms` is recorded in, each once:
    /// those named that a rule covers, and those of `kept` that a room
    /// with `"*"` matches (a wildcard makes no room of its own).
    pub(super) fn targets<V>(&self, rooms: &[Room], kept: &HashMap<Room, V>) -> Vec<Room> {
        let mut targets: Vec<Room> = Vec::new();
        for room in rooms {
            if room.has_wildcard() {
                targets.extend(kept.keys().filter(|k| room.matches(k)).cloned());
            } else if self.rule(room).is_some() {
                targets.push(room.clone());
            }
        }
        // A room reached twice (named, and matched by a wildcard) records
        // the publication once.
        if targets.len() > 1 {
            let mut seen = HashSet::with_capacity(targets.len());
            targets.retain(|room| seen.insert(room.clone()));
        }
        targets
    }
}

/// One recorded publication.
#[derive(Clone)]
pub(super) struct Entry {
    /// Its offset in the room.
    pub(super) offset: u64,
    /// Its place on the history's one number line across rooms.
    pub(super) seq: u64,
    pub(super) at_ms: u64,
    pub(super) frame: PublishFrame,
}

impl Entry {
    /// Bytes it is counted as.
    pub(super) fn bytes(&self) -> usize {
        self.frame.encoded_len() + ENTRY_OVERHEAD
    }
}

/// One room's publications, oldest first, within its rule's size and age.
pub(super) struct Kept {
    pub(super) entries: VecDeque<Entry>,
    size: usize,
    age_ms: u64,
    /// What the room counts as: its bookkeeping and its publications.
    pub(super) bytes: usize,
}

impl Kept {
    /// Concrete `room`'s publications under `rule`, starting with
    /// `entries` (none, or read back from a snapshot), not yet trimmed.
    pub(super) fn new(rule: &Rule, room: &Room, entries: VecDeque<Entry>) -> Kept {
        Kept {
            bytes: STREAM_OVERHEAD
                + room.to_string().len()
                + entries.iter().map(Entry::bytes).sum::<usize>(),
            entries,
            size: rule.size,
            age_ms: rule.age_ms,
        }
    }

    /// Adds the newest publication, counted in `total` too.
    pub(super) fn push(&mut self, entry: Entry, total: &mut usize) {
        let cost = entry.bytes();
        self.entries.push_back(entry);
        self.bytes += cost;
        *total += cost;
    }

    /// Drops publications past the size or age, oldest first, uncounted
    /// from `total` too; returns the newest one dropped, if any.
    pub(super) fn trim(&mut self, total: &mut usize, now_ms: u64) -> Option<Entry> {
        let oldest_kept = now_ms.saturating_sub(self.age_ms);
        let mut dropped = None;
        while let Some(front) = self.entries.front() {
            if self.entries.len() <= self.size && front.at_ms >= oldest_kept {
                break;
            }
            let cost = front.bytes();
            self.bytes -= cost;
            *total -= cost;
            dropped = self.entries.pop_front();
        }
        dropped
    }

    /// The newest `limit` publications, oldest first, for the admin API.
    pub(super) fn page(&self, limit: usize) -> Vec<Recorded> {
        let skip = self.entries.len().saturating_sub(limit);
        self.entries
            .iter()
            .skip(skip)
            .map(|e| Recorded {
                offset: e.offset,
                seq: e.seq,
                at_ms: e.at_ms,
                frame: e.frame.clone(),
            })
            .collect()
    }
}

/// The recovery of `missed`, publications gathered from the rooms a
/// subscription matches: in `seq` order, a publication to several of them
/// once, each framed by `frame`; incomplete when more than `max`.
pub(super) fn recovery(
    mut missed: Vec<&Entry>,
    max: usize,
    frame: impl Fn(&Entry) -> PublishFrame,
) -> Recovery {
    missed.sort_by_key(|e| e.seq);
    missed.dedup_by_key(|e| e.seq);
    if missed.len() > max {
        return Recovery::incomplete();
    }
    Recovery {
        complete: true,
        frames: missed.into_iter().map(frame).collect(),
    }
}
