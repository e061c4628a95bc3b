//! `[history] persist = true`: the history kept across a clean restart, in
//! one file, `state_dir/history.json`.
//!
//! Why a snapshot written at shutdown rather than the SQLite store or a
//! file per room: writing each publication as it happens would put a disk
//! write (or a queue in front of one) on every publish, the path the
//! host is measured on, and a file per room would be thousands of files;
//! a snapshot costs nothing until the host stops. What it cannot survive
//! is a crash: then there is no snapshot, every room gets a new epoch, and
//! returning clients are told `complete:false`: never a wrong answer.
//! For that the file is removed as soon as it has been read, so a host
//! that crashes later cannot read back a history that has since moved on.

use std::{fs, io, path::Path};

use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};

use crate::{protocol::PublishFrame, rooms::Room, util::fs::write_atomically};

use super::{history::SnapshotError, retention::Entry, streams::Streams};

/// The file in `state_dir`.
pub const SNAPSHOT_FILE: &str = "history.json";
/// The snapshot's format; another is not read (the rooms start anew).
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    epoch: String,
    seq: u64,
    evicted_through: u64,
    rooms: Vec<SavedRoom>,
}

#[derive(Serialize, Deserialize)]
struct SavedRoom {
    room: Value,
    epoch: String,
    last: u64,
    trimmed_offset: u64,
    trimmed_seq: u64,
    entries: Vec<SavedEntry>,
}

#[derive(Serialize, Deserialize)]
struct SavedEntry {
    offset: u64,
    seq: u64,
    at_ms: u64,
    data: Box<RawValue>,
}

impl Streams {
    /// Writes every room's history to `path` (atomically, owner-only: the
    /// publications may be private).
    pub fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        let rooms = self
            .streams
            .iter()
            .map(|(room, s)| SavedRoom {
                room: room.to_json(),
                epoch: s.epoch.to_string(),
                last: s.last,
                trimmed_offset: s.trimmed_offset,
                trimmed_seq: s.trimmed_seq,
                entries: s
                    .kept
                    .entries
                    .iter()
                    .filter_map(|e| {
                        Some(SavedEntry {
                            offset: e.offset,
                            seq: e.seq,
                            at_ms: e.at_ms,
                            data: RawValue::from_string(e.frame.data().to_owned()).ok()?,
                        })
                    })
                    .collect(),
            })
            .collect();
        let snapshot = Snapshot {
            version: VERSION,
            epoch: self.epoch.to_string(),
            seq: self.seq,
            evicted_through: self.evicted_through,
            rooms,
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|e| SnapshotError::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        write_atomically(path, &bytes, 0o600).map_err(|e| SnapshotError::Io {
            path: e.path,
            source: e.source,
        })
    }

    /// Reads back what [`save`](Self::save) wrote, then removes the file;
    /// returns how many rooms came back. No file: nothing, no error.
    /// Rooms no `[[history.rooms]]` entry covers any more are left out,
    /// and each room's current size and age apply.
    pub fn restore(&mut self, path: &Path, now_ms: u64) -> Result<usize, SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        // Removed before use: if this run crashes, the next one must not
        // read a history this one has moved past.
        fs::remove_file(path).map_err(io)?;
        let snapshot: Snapshot = serde_json::from_slice(&bytes)
            .ok()
            .filter(|s: &Snapshot| s.version == VERSION)
            .ok_or_else(|| SnapshotError::Format {
                path: path.to_owned(),
                reason: "unreadable or another version".to_owned(),
            })?;
        self.epoch = snapshot.epoch.into();
        self.seq = snapshot.seq;
        self.evicted_through = snapshot.evicted_through;
        let mut restored = 0;
        for saved in snapshot.rooms {
            let Ok(room) = Room::parse(&saved.room) else {
                continue;
            };
            let entries = saved
                .entries
                .into_iter()
                .map(|e| Entry {
                    offset: e.offset,
                    seq: e.seq,
                    at_ms: e.at_ms,
                    frame: PublishFrame::with_offset(&e.data, e.offset),
                })
                .collect();
            let position = (saved.last, saved.trimmed_offset, saved.trimmed_seq);
            if self.restore_room(room, saved.epoch.into(), position, entries, now_ms) {
                restored += 1;
            }
        }
        Ok(restored)
    }
}
