//! The [`History`] contract: what an engine that keeps room history does,
//! beside [`FanoutEngine`](super::FanoutEngine)'s delivery. A host alone
//! keeps [`Streams`](super::Streams), in memory, which numbers
//! publications itself; a host in a cluster keeps a mirror of a JetStream
//! stream (`nats::mirror`), numbered by the stream's sequence, so every
//! host gives the same publication the same offset.
//!
//! Two kinds of position exist:
//! - a room's own: `offset` counts that room's publications from 1, and
//!   its `epoch` changes whenever its history is lost (a restart without
//!   persistence, the whole room dropped to stay within `max_bytes`);
//! - the host's, for subscriptions with `"*"` values: `offset` is the
//!   host-wide publish sequence, which orders publications across rooms,
//!   and the epoch is the host's history epoch (new at each start without
//!   persistence).

use std::{
    io,
    path::{Path, PathBuf},
};

use serde_json::value::RawValue;

use crate::{
    protocol::{PublishFrame, StreamPosition},
    rooms::Room,
};

/// What one publish was numbered in the history it reached.
#[derive(Debug, Default)]
pub struct Stamps {
    /// Each concrete room that recorded it, with the publication's frame
    /// at that room's offset.
    pub rooms: Vec<(Room, PublishFrame)>,
    /// The host-wide sequence number it was given (0: no room recorded it).
    pub seq: u64,
}

impl Stamps {
    /// Whether any room recorded the publish.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

/// The missed publications of one subscription, or why there are none.
#[derive(Debug)]
pub struct Recovery {
    /// Every missed publication was found (and is in `frames`); when false
    /// `frames` is empty: nothing partial is sent.
    pub complete: bool,
    /// The frames, in publication order, numbered as live ones would be.
    pub frames: Vec<PublishFrame>,
}

impl Recovery {
    /// The history cannot say what was missed.
    pub fn incomplete() -> Recovery {
        Recovery {
            complete: false,
            frames: Vec::new(),
        }
    }
}

/// One publication as the admin API shows it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its offset in the room.
    pub offset: u64,
    /// Its host-wide sequence number.
    pub seq: u64,
    /// When it was published, in milliseconds since 1970.
    pub at_ms: u64,
    /// Its frame (the data is [`PublishFrame::data`]).
    pub frame: PublishFrame,
}

/// A room's history for operators: its position and latest publications.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The room's current position.
    pub position: StreamPosition,
    /// The newest publications, oldest first, at most the limit asked.
    pub publications: Vec<Recorded>,
}

/// Per-room history: bounded streams of recent publications. Called by
/// the engine with its history lock held, so each call sees and leaves a
/// consistent state; `now_ms` is the wall clock in milliseconds.
pub trait History: Send + 'static {
    /// Whether publications that `room` (a subscription's, possibly with
    /// `"*"`) receives can be recovered: a configured pattern overlaps it.
    fn covers(&self, room: &Room) -> bool;

    /// The position a new subscription to `room` starts at; `None` when
    /// the room keeps no history. A room that has none yet gets its stream
    /// (and epoch) now, so a client that comes back can tell whether it
    /// was lost since.
    fn position(&mut self, room: &Room, now_ms: u64) -> Option<StreamPosition>;

    /// Records `data` in every stream `rooms` reach (a room with `"*"`
    /// reaches the existing streams it matches) and numbers it.
    fn append(&mut self, rooms: &[Room], data: &RawValue, now_ms: u64) -> Stamps;

    /// What a subscription to `room` missed after `since`, at most `max`
    /// publications (more is reported incomplete).
    fn recover(&mut self, room: &Room, since: &StreamPosition, max: usize, now_ms: u64)
    -> Recovery;

    /// A concrete room's newest `limit` publications, for the admin API.
    fn page(&mut self, room: &Room, limit: usize, now_ms: u64) -> Option<HistoryPage>;

    /// Bytes held (publications and per-room bookkeeping), as counted
    /// against `max_bytes`.
    fn bytes(&self) -> usize;

    /// Keeps everything at `path` for the next start (`persist = true`).
    fn save(&self, path: &Path) -> Result<(), SnapshotError>;

    /// Drops every stream and starts a new host epoch: publications were
    /// missed (the cluster link was down), so no position from before may
    /// be recovered as complete. Clients coming back get `complete:false`.
    fn forget(&mut self);

    /// Records a publication someone else numbered: `seq`, the position
    /// every host agrees on (a JetStream stream sequence). `None` when
    /// `seq` was already applied, so a redelivery is not delivered twice.
    /// A history that numbers its own publications records as
    /// [`History::append`] does.
    fn append_at(
        &mut self,
        rooms: &[Room],
        data: &RawValue,
        seq: u64,
        now_ms: u64,
    ) -> Option<Stamps> {
        let _ = seq;
        Some(self.append(rooms, data, now_ms))
    }

    /// The shared stream is (again) `epoch`, its last sequence `last`:
    /// returns the sequence to read it from. A history that numbers its
    /// own publications has nothing to read (`None`).
    fn resync(&mut self, epoch: &str, last: u64) -> Option<u64> {
        let _ = (epoch, last);
        None
    }
}

/// Why the history could not be saved or read back.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading, writing or removing the file failed.
    #[error("{}: {source}; the history starts anew (clients are told complete:false)", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not a snapshot this host wrote.
    #[error("{} is not a history snapshot of this version ({reason}); it was removed and the history starts anew", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The wall clock in milliseconds since 1970 (0 before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
