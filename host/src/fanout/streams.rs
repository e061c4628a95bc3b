//! [`Streams`]: room history in memory. One stream per concrete room that
//! a `[[history.rooms]]` entry covers, created by its first subscribe or
//! publish; each keeps at most its entry's `size` publications for at most
//! its `age`, and all together stay under `max_bytes` by dropping whole
//! rooms: those never published to first, then the least recently used (a
//! dropped room's next stream has a new epoch, so its clients learn that
//! its history is gone). What a room keeps, and the bytes it counts as,
//! are `retention`'s, as in the cluster's mirror.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use serde_json::value::RawValue;

use crate::{
    config::HistoryConfig,
    protocol::{PublishFrame, StreamPosition},
    rooms::Room,
};

use super::{
    history::{History, HistoryPage, Recovery, Stamps},
    retention::{self, Entry, Kept, Rules},
};

/// One room's history.
pub(super) struct Stream {
    pub(super) epoch: Arc<str>,
    /// The last offset given (0: none yet).
    pub(super) last: u64,
    /// The newest offset dropped for size or age (0: none): a client at or
    /// past it has missed nothing that is gone.
    pub(super) trimmed_offset: u64,
    /// The host sequence of that publication.
    pub(super) trimmed_seq: u64,
    pub(super) kept: Kept,
    /// Its key in `Streams::recency` (or `unused` while `last` is 0).
    touched: u64,
}

/// Room history in memory, bounded per room and in total.
pub struct Streams {
    rules: Rules,
    max_bytes: usize,
    bytes: usize,
    pub(super) streams: HashMap<Room, Stream>,
    /// Rooms published to, by when they were last published or
    /// subscribed to, oldest first: the order whole rooms are dropped in.
    recency: BTreeMap<u64, Room>,
    /// Rooms only subscribed to so far, in the same order, dropped before
    /// any room in `recency`: they hold no publication, so a client that
    /// subscribes to many empty rooms pushes out no one's history.
    unused: BTreeMap<u64, Room>,
    clock: u64,
    /// The host-wide publish sequence (last given).
    pub(super) seq: u64,
    pub(super) epoch: Arc<str>,
    /// The host sequence when a room was last dropped whole: a wildcard
    /// position before it may have missed that room's publications.
    pub(super) evicted_through: u64,
}

/// A new random epoch: 16 hex digits.
pub fn new_epoch() -> Arc<str> {
    let mut bytes = [0u8; 8];
    // Without the OS's randomness, the clock still makes a restart's epoch
    // differ from the last one.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = super::history::now_ms().to_le_bytes();
    }
    Arc::from(format!("{:016x}", u64::from_le_bytes(bytes)))
}

impl Streams {
    /// Streams for `config`'s rooms; `None` when it names none (see
    /// [`Rules::new`]).
    pub fn new(config: &HistoryConfig) -> Option<Streams> {
        Rules::new(config).map(|rules| Streams {
            rules,
            max_bytes: config.max_bytes,
            bytes: 0,
            streams: HashMap::new(),
            recency: BTreeMap::new(),
            unused: BTreeMap::new(),
            clock: 0,
            seq: 0,
            epoch: new_epoch(),
            evicted_through: 0,
        })
    }

    /// The stream of concrete `room`, made if a rule covers it.
    fn stream(&mut self, room: &Room) -> Option<&mut Stream> {
        if !self.streams.contains_key(room) {
            let rule = self.rules.rule(room)?;
            let stream = Stream {
                epoch: new_epoch(),
                last: 0,
                trimmed_offset: 0,
                trimmed_seq: 0,
                kept: Kept::new(rule, room, VecDeque::new()),
                touched: 0,
            };
            self.insert(room.clone(), stream);
        }
        self.touch(room);
        self.streams.get_mut(room)
    }

    /// Adds a stream (made, or read back from a snapshot).
    pub(super) fn insert(&mut self, room: Room, mut stream: Stream) {
        self.clock += 1;
        stream.touched = self.clock;
        self.bytes += stream.kept.bytes;
        let order = if stream.last == 0 {
            &mut self.unused
        } else {
            &mut self.recency
        };
        order.insert(self.clock, room.clone());
        self.streams.insert(room, stream);
    }

    /// A room read back from a snapshot: `position` is its last offset and
    /// what was trimmed (offset, sequence). False when no rule covers it
    /// any more. Trimmed to its rule now, and all rooms to `max_bytes`.
    pub(super) fn restore_room(
        &mut self,
        room: Room,
        epoch: Arc<str>,
        position: (u64, u64, u64),
        entries: VecDeque<Entry>,
        now_ms: u64,
    ) -> bool {
        let Some(rule) = self.rules.rule(&room) else {
            return false;
        };
        let (last, trimmed_offset, trimmed_seq) = position;
        let mut stream = Stream {
            epoch,
            last,
            trimmed_offset,
            trimmed_seq,
            kept: Kept::new(rule, &room, entries),
            touched: 0,
        };
        // Not yet counted in `self.bytes`: `insert` adds what is left.
        let mut uncounted = stream.kept.bytes;
        Self::trim(&mut stream, &mut uncounted, now_ms);
        self.insert(room, stream);
        self.evict();
        true
    }

    /// Marks `room` as the most recently used.
    fn touch(&mut self, room: &Room) {
        let Some(stream) = self.streams.get_mut(room) else {
            return;
        };
        self.clock += 1;
        let order = if stream.last == 0 {
            &mut self.unused
        } else {
            &mut self.recency
        };
        order.remove(&stream.touched);
        stream.touched = self.clock;
        order.insert(self.clock, room.clone());
    }

    /// Drops whole rooms until within `max_bytes`: rooms never published
    /// to first, then the least recently used.
    fn evict(&mut self) {
        while self.bytes > self.max_bytes {
            let (room, published) = match self.unused.pop_first() {
                Some((_, room)) => (room, false),
                None => match self.recency.pop_first() {
                    Some((_, room)) => (room, true),
                    None => break,
                },
            };
            if let Some(stream) = self.streams.remove(&room) {
                self.bytes -= stream.kept.bytes;
                // A room that held no publication takes none from a
                // wildcard subscription's history.
                if published {
                    self.evicted_through = self.seq;
                }
                tracing::debug!(%room, "history: room dropped to stay within max_bytes");
            }
        }
    }

    /// Publications of `stream` past its size or age, dropped.
    fn trim(stream: &mut Stream, bytes: &mut usize, now_ms: u64) {
        if let Some(dropped) = stream.kept.trim(bytes, now_ms) {
            stream.trimmed_offset = dropped.offset;
            stream.trimmed_seq = dropped.seq;
        }
    }

    fn trim_room(&mut self, room: &Room, now_ms: u64) {
        if let Some(stream) = self.streams.get_mut(room) {
            Self::trim(stream, &mut self.bytes, now_ms);
        }
    }

    /// Records one publication in `room`'s stream (made if need be).
    /// Fields are reached directly rather than through `stream`, `touch`
    /// and `trim_room`: each of those looks the room up again, and hashing
    /// a room is most of what recording costs.
    fn record(
        &mut self,
        room: &Room,
        data: &RawValue,
        seq: u64,
        now_ms: u64,
    ) -> Option<PublishFrame> {
        if !self.streams.contains_key(room) {
            self.stream(room)?;
        }
        let stream = self.streams.get_mut(room)?;
        self.clock += 1;
        if stream.last == 0 {
            self.unused.remove(&stream.touched);
        } else {
            self.recency.remove(&stream.touched);
        }
        stream.touched = self.clock;
        self.recency.insert(self.clock, room.clone());
        stream.last += 1;
        let frame = PublishFrame::with_offset(data, stream.last);
        let entry = Entry {
            offset: stream.last,
            seq,
            at_ms: now_ms,
            frame: frame.clone(),
        };
        stream.kept.push(entry, &mut self.bytes);
        Self::trim(stream, &mut self.bytes, now_ms);
        Some(frame)
    }

    /// The rooms (concrete) whose streams a wildcard `room` reaches.
    fn matching(&self, room: &Room) -> Vec<Room> {
        self.streams
            .keys()
            .filter(|s| room.matches(s))
            .cloned()
            .collect()
    }

    fn recover_room(
        &mut self,
        room: &Room,
        since: &StreamPosition,
        max: usize,
        now_ms: u64,
    ) -> Recovery {
        self.trim_room(room, now_ms);
        // No stream: none was ever made, or it was dropped; either way
        // `since` is not in one.
        let Some(stream) = self.streams.get(room) else {
            return Recovery::incomplete();
        };
        if since.epoch != stream.epoch
            || since.offset > stream.last
            || since.offset < stream.trimmed_offset
            || stream.last - since.offset > max as u64
        {
            return Recovery::incomplete();
        }
        let frames = stream
            .kept
            .entries
            .iter()
            .filter(|e| e.offset > since.offset)
            .map(|e| e.frame.clone())
            .collect();
        Recovery {
            complete: true,
            frames,
        }
    }

    fn recover_wildcard(
        &mut self,
        room: &Room,
        since: &StreamPosition,
        max: usize,
        now_ms: u64,
    ) -> Recovery {
        if since.epoch != self.epoch
            || since.offset > self.seq
            || since.offset < self.evicted_through
        {
            return Recovery::incomplete();
        }
        let mut missed: Vec<&Entry> = Vec::new();
        for name in self.matching(room) {
            self.trim_room(&name, now_ms);
        }
        for (name, stream) in &self.streams {
            if !room.matches(name) {
                continue;
            }
            if since.offset < stream.trimmed_seq {
                return Recovery::incomplete();
            }
            missed.extend(stream.kept.entries.iter().filter(|e| e.seq > since.offset));
        }
        // One host-wide sequence orders publications across rooms; each
        // is framed at it, as the live ones to a wildcard are.
        retention::recovery(missed, max, |e| e.frame.at_offset(e.seq))
    }
}

impl History for Streams {
    fn covers(&self, room: &Room) -> bool {
        self.rules.covers(room)
    }

    fn position(&mut self, room: &Room, now_ms: u64) -> Option<StreamPosition> {
        if room.has_wildcard() {
            return self.covers(room).then(|| StreamPosition {
                offset: self.seq,
                epoch: self.epoch.clone(),
            });
        }
        self.trim_room(room, now_ms);
        let stream = self.stream(room)?;
        let position = StreamPosition {
            offset: stream.last,
            epoch: stream.epoch.clone(),
        };
        self.evict();
        Some(position)
    }

    fn append(&mut self, rooms: &[Room], data: &RawValue, now_ms: u64) -> Stamps {
        let targets = self.rules.targets(rooms, &self.streams);
        if targets.is_empty() {
            return Stamps::default();
        }
        self.seq += 1;
        let seq = self.seq;
        let mut stamps = Stamps {
            rooms: Vec::with_capacity(targets.len()),
            seq,
        };
        for room in targets {
            if let Some(frame) = self.record(&room, data, seq, now_ms) {
                stamps.rooms.push((room, frame));
            }
        }
        self.evict();
        stamps
    }

    fn recover(
        &mut self,
        room: &Room,
        since: &StreamPosition,
        max: usize,
        now_ms: u64,
    ) -> Recovery {
        if room.has_wildcard() {
            self.recover_wildcard(room, since, max, now_ms)
        } else {
            self.recover_room(room, since, max, now_ms)
        }
    }

    fn page(&mut self, room: &Room, limit: usize, now_ms: u64) -> Option<HistoryPage> {
        self.trim_room(room, now_ms);
        let stream = self.streams.get(room)?;
        Some(HistoryPage {
            position: StreamPosition {
                offset: stream.last,
                epoch: stream.epoch.clone(),
            },
            publications: stream.kept.page(limit),
        })
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    fn save(&self, path: &std::path::Path) -> Result<(), super::history::SnapshotError> {
        Streams::save(self, path)
    }

    fn forget(&mut self) {
        self.streams.clear();
        self.recency.clear();
        self.unused.clear();
        self.bytes = 0;
        self.evicted_through = self.seq;
        self.epoch = new_epoch();
    }
}
