//! Fan-out engines: who gets a publish. An engine keeps the subscriptions
//! and, for a publish, pushes one shared, already-encoded frame into each
//! matching session's outbox; the session's writer delivers it. Today's
//! engine keeps everything in memory, with per-room history (offsets,
//! epochs) for the rooms `[[history.rooms]]` names; with `[cluster]`, the
//! NATS engine wraps it to span hosts.
//!
//! # Layout
//! - `engine`: the [`FanoutEngine`] contract
//! - `history`: the [`History`] contract (streams, offsets, epochs)
//! - `memory`: [`MemoryEngine`], the room index of this host's sessions
//! - `nats`: [`NatsEngine`], the memory engine plus fan-out across hosts
//!   through NATS (`[cluster]`)
//! - `retention`: which rooms keep history, and one room's publications
//!   bounded by size and age (both histories')
//! - `streams`: [`Streams`], room history in memory, bounded per room and
//!   in total
//! - `snapshot`: `[history] persist`, the history kept across a clean
//!   restart in `state_dir/history.json`

mod engine;
mod history;
mod memory;
mod nats;
mod retention;
mod snapshot;
mod streams;

pub use engine::{Delivery, FanoutEngine, Subscription};
pub use history::{History, HistoryPage, Recorded, Recovery, SnapshotError, Stamps, now_ms};
pub use memory::MemoryEngine;
pub use nats::{ClusterError, NatsEngine, connect_options};
pub use retention::{ENTRY_OVERHEAD, STREAM_OVERHEAD};
pub use snapshot::SNAPSHOT_FILE;
pub use streams::{Streams, new_epoch};

#[cfg(test)]
mod tests;
