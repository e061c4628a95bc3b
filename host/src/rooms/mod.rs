//! Rooms: high-templar's pub/sub model with working wildcards.
//!
//! A room is a small JSON object of key → scalar (`{"target": "chat",
//! "customer": "7"}`); the string `"*"` is a wildcard. Two rules use it
//! (DESIGN §5):
//! - **permission** ([`Room::permits`]): an allowed room permits a requested
//!   room when the keys are the same and each value is equal or allowed as
//!   `"*"`;
//! - **delivery** ([`Room::matches`]): a published room reaches a
//!   subscription when the keys are the same and each value is equal or
//!   either side is `"*"`.
//!
//! # Layout
//! - `room`: [`Room`] parsing, canonical form, the two rules
//! - `index`: [`RoomIndex`], subscriptions by key set → value/`*` trie, with
//!   a per-session reverse index; no I/O, no locks

pub mod index;
pub mod room;

pub use index::{IndexError, RoomIndex};
pub use room::{Room, RoomError, RoomNumber, RoomValue};
