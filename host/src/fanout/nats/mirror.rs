//! [`Mirror`]: a host's copy of the cluster's JetStream history stream,
//! the [`History`] a host keeps when `[cluster]` and `[[history.rooms]]`
//! are both set. Every host reads the whole stream in order (see
//! `jetstream`), so each holds the same publications under the same
//! numbers, and a client may come back with `since` to any of them.
//!
//! # Positions
//!
//! One number line serves every room and every wildcard subscription: the
//! stream sequence. A publication's offset is its sequence; a position
//! handed out at subscribe is the last sequence this host applied ("seen
//! through here"); the epoch names the stream (its creation time), so a
//! stream made anew is a new epoch. Offsets in a room therefore increase
//! but skip the numbers other rooms' publications took.
//!
//! # When a recovery is complete
//!
//! `since` is recovered completely when every publication of the room
//! after it is still here: its offset is at or past the room's `need`,
//! the newest sequence after which nothing of the room may be missing:
//! - the room's newest publication dropped for size, age or `max_bytes`
//!   (everything is dropped oldest first, so a client that saw it missed
//!   nothing that is gone);
//! - for a room first met while reading what the stream held at start,
//!   the sequence just before that first publication: the stream drops
//!   oldest first too, so its older ones may be gone, its later ones not;
//! - for a room this host holds nothing of, the stream's last sequence at
//!   start (older ones may have been dropped before this host read them),
//!   when a room was last dropped whole here, or the last publication to
//!   a room with `"*"` (which reaches rooms this host holds no log of);
//! - after the link to NATS dropped, or a publication was delivered only
//!   here while it was down, the sequence after the last one applied: a
//!   client at or before it may have missed what no stream holds.
//!
//! Anything else is `complete:false`; it may say so of a position that
//! missed nothing (never the other way round).
//!
//! What a room keeps (its rule's size and age) and the bytes it counts as
//! are `fanout::retention`'s, as on a host alone.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use serde_json::value::RawValue;

use crate::{
    config::HistoryConfig,
    fanout::history::{History, HistoryPage, Recovery, SnapshotError, Stamps},
    fanout::new_epoch,
    fanout::retention::{self, Entry, Kept, Rules},
    protocol::{PublishFrame, StreamPosition},
    rooms::Room,
};

/// One room's publications, oldest first (each one's offset is its
/// sequence).
struct Log {
    kept: Kept,
    /// See the module docs: nothing of the room after it is missing.
    need: u64,
    /// Its key in `Mirror::recency`.
    touched: u64,
}

/// The cluster's history as this host holds it.
pub(crate) struct Mirror {
    rules: Rules,
    max_bytes: usize,
    bytes: usize,
    rooms: HashMap<Room, Log>,
    /// Rooms by when they were last published to, oldest first: the order
    /// whole rooms are dropped in to stay within `max_bytes`.
    recency: BTreeMap<u64, Room>,
    clock: u64,
    /// The stream's epoch (a random one until the stream is read).
    epoch: Arc<str>,
    /// The last sequence applied.
    applied: u64,
    /// Rooms this host holds nothing of need at least this: the stream's
    /// last sequence when this host started reading it, or when it last
    /// dropped a room whole.
    absent_need: u64,
    /// Every room needs at least this (the link dropped).
    lost_need: u64,
}

impl Mirror {
    /// A mirror for `config`'s rooms; `None` when it names none.
    pub(crate) fn new(config: &HistoryConfig) -> Option<Mirror> {
        Rules::new(config).map(|rules| Mirror {
            rules,
            max_bytes: config.max_bytes,
            bytes: 0,
            rooms: HashMap::new(),
            recency: BTreeMap::new(),
            clock: 0,
            epoch: new_epoch(),
            applied: 0,
            absent_need: 0,
            lost_need: 0,
        })
    }

    fn clear(&mut self) {
        self.rooms.clear();
        self.recency.clear();
        self.bytes = 0;
    }

    /// Drops what is past a room's size or age.
    fn trim(log: &mut Log, bytes: &mut usize, now_ms: u64) {
        if let Some(dropped) = log.kept.trim(bytes, now_ms) {
            log.need = log.need.max(dropped.seq);
        }
    }

    /// Drops whole rooms to stay within `max_bytes`: those holding no
    /// publication first (so subscribing to many empty rooms pushes out
    /// no one's history), then the least recently used.
    fn evict(&mut self) {
        if self.bytes <= self.max_bytes {
            return;
        }
        let empty: Vec<(u64, Room)> = self
            .recency
            .iter()
            .filter(|(_, room)| {
                self.rooms
                    .get(*room)
                    .is_some_and(|l| l.kept.entries.is_empty())
            })
            .map(|(k, room)| (*k, room.clone()))
            .collect();
        for (key, room) in empty {
            if self.bytes <= self.max_bytes {
                return;
            }
            self.recency.remove(&key);
            if let Some(log) = self.rooms.remove(&room) {
                self.bytes -= log.kept.bytes;
                // What it dropped before is all it may have missed.
                self.absent_need = self.absent_need.max(log.need);
            }
        }
        while self.bytes > self.max_bytes {
            let Some((_, room)) = self.recency.pop_first() else {
                break;
            };
            if let Some(log) = self.rooms.remove(&room) {
                self.bytes -= log.kept.bytes;
                self.absent_need = self.absent_need.max(self.applied);
            }
        }
    }

    /// The log of concrete `room`, made (needing `need`) if a rule covers
    /// it, and marked as the most recently used.
    fn log(&mut self, room: &Room, need: u64) -> Option<&mut Log> {
        if !self.rooms.contains_key(room) {
            let rule = self.rules.rule(room)?;
            let log = Log {
                kept: Kept::new(rule, room, VecDeque::new()),
                need,
                touched: 0,
            };
            self.bytes += log.kept.bytes;
            self.rooms.insert(room.clone(), log);
        }
        self.clock += 1;
        let log = self.rooms.get_mut(room)?;
        self.recency.remove(&log.touched);
        log.touched = self.clock;
        self.recency.insert(self.clock, room.clone());
        Some(log)
    }

    /// Records the publication `seq` in concrete `room`.
    fn record(&mut self, room: &Room, frame: &PublishFrame, seq: u64, now_ms: u64) {
        // Both bound what of the room may be gone: all of it is older than
        // its first publication here, and older than `absent_need`.
        let first_need = (seq - 1).min(self.absent_need);
        if self.log(room, first_need).is_none() {
            return;
        }
        let Some(log) = self.rooms.get_mut(room) else {
            return;
        };
        let entry = Entry {
            offset: seq,
            seq,
            at_ms: now_ms,
            frame: frame.clone(),
        };
        log.kept.push(entry, &mut self.bytes);
        Self::trim(log, &mut self.bytes, now_ms);
    }

    /// What a position must be at least for `room` to be recovered.
    fn need(&self, room: &Room) -> u64 {
        let own = if room.has_wildcard() {
            self.rooms
                .iter()
                .filter(|(name, _)| room.matches(name))
                .map(|(_, log)| log.need)
                .max()
                .unwrap_or(0)
                .max(self.absent_need)
        } else {
            self.rooms.get(room).map_or(self.absent_need, |l| l.need)
        };
        own.max(self.lost_need)
    }

    fn trim_all(&mut self, room: &Room, now_ms: u64) {
        for (name, log) in &mut self.rooms {
            if room.matches(name) {
                Self::trim(log, &mut self.bytes, now_ms);
            }
        }
    }
}

impl History for Mirror {
    fn covers(&self, room: &Room) -> bool {
        self.rules.covers(room)
    }

    /// A concrete room gets its log now, so a publication to a room with
    /// `"*"` that reaches it is recorded (and numbered) for it.
    fn position(&mut self, room: &Room, _now_ms: u64) -> Option<StreamPosition> {
        if !self.covers(room) {
            return None;
        }
        if !room.has_wildcard() {
            self.log(room, self.absent_need);
            self.evict();
        }
        Some(StreamPosition {
            offset: self.applied,
            epoch: self.epoch.clone(),
        })
    }

    /// A publication delivered here alone (the link is down): it gets no
    /// offset, and no position from before it can be recovered.
    fn append(&mut self, rooms: &[Room], _data: &RawValue, _now_ms: u64) -> Stamps {
        if rooms.iter().any(|r| self.covers(r)) {
            self.lost_need = self.applied + 1;
        }
        Stamps::default()
    }

    fn append_at(
        &mut self,
        rooms: &[Room],
        data: &RawValue,
        seq: u64,
        now_ms: u64,
    ) -> Option<Stamps> {
        if seq <= self.applied {
            return None;
        }
        self.applied = seq;
        let targets = self.rules.targets(rooms, &self.rooms);
        let frame = PublishFrame::with_offset(data, seq);
        for room in &targets {
            self.record(room, &frame, seq, now_ms);
        }
        // A room with `"*"` reaches rooms this host holds no log of: what
        // they may have missed is not here.
        if rooms.iter().any(Room::has_wildcard) {
            self.absent_need = self.absent_need.max(seq);
        }
        self.evict();
        Some(Stamps {
            rooms: targets.into_iter().map(|r| (r, frame.clone())).collect(),
            seq,
        })
    }

    fn recover(
        &mut self,
        room: &Room,
        since: &StreamPosition,
        max: usize,
        now_ms: u64,
    ) -> Recovery {
        self.trim_all(room, now_ms);
        if since.epoch != self.epoch
            || since.offset > self.applied
            || since.offset < self.need(room)
        {
            return Recovery::incomplete();
        }
        let missed: Vec<&Entry> = self
            .rooms
            .iter()
            .filter(|(name, _)| room.matches(name))
            .flat_map(|(_, log)| log.kept.entries.iter().filter(|e| e.seq > since.offset))
            .collect();
        // Every frame is already at its sequence, in every room.
        retention::recovery(missed, max, |e| e.frame.clone())
    }

    fn page(&mut self, room: &Room, limit: usize, now_ms: u64) -> Option<HistoryPage> {
        let log = self.rooms.get_mut(room)?;
        Self::trim(log, &mut self.bytes, now_ms);
        Some(HistoryPage {
            position: StreamPosition {
                offset: self.applied,
                epoch: self.epoch.clone(),
            },
            publications: log.kept.page(limit),
        })
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    /// The stream is the history kept across restarts: nothing to write.
    fn save(&self, _path: &std::path::Path) -> Result<(), SnapshotError> {
        Ok(())
    }

    fn forget(&mut self) {
        self.clear();
        self.lost_need = self.applied + 1;
    }

    /// The same stream as before: read on after the last sequence applied,
    /// forgetting (the reader stopped, so it may have skipped what the
    /// stream dropped meanwhile). A new stream: start over from its first
    /// publication, its last sequence now being where a room's older
    /// publications may have been dropped.
    fn resync(&mut self, epoch: &str, last: u64) -> Option<u64> {
        if *self.epoch == *epoch {
            self.forget();
            return Some(self.applied + 1);
        }
        self.clear();
        self.epoch = Arc::from(epoch);
        self.applied = 0;
        self.absent_need = last;
        self.lost_need = 0;
        Some(1)
    }
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
