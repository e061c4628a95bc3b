//! Fan-out engines: who gets a publish. An engine keeps the subscriptions
//! and, for a publish, pushes one shared, already-encoded frame into each
//! matching session's outbox; the session's writer delivers it. Today's
//! engine keeps everything in memory; one that keeps per-room history
//! (offsets, epochs) and one that spans hosts over NATS plug in here.
//!
//! # Layout
//! - `engine`: the [`FanoutEngine`] contract
//! - `memory`: [`MemoryEngine`], the room index of this host's sessions

mod engine;
mod memory;

pub use engine::{Delivery, FanoutEngine};
pub use memory::MemoryEngine;
