//! The sessions of this host, below the gateway that serves their sockets:
//! each session's outbox, its calls, the table of open and parked
//! sessions, and the traffic counters.
//!
//! # Layout
//! - `outbox`: a session's outbox in two lanes (replies; unrequested frames
//!   bounded, 4008 past the bound); publishers never wait
//! - `calls`: a session's calls by `requestId`, for exactly-once execution;
//!   what it remembers is bounded in count and bytes
//! - `parked`: sessions whose client dropped, kept for `?resume=<token>`
//!   (at most 16 per user)
//! - `table`: open sessions by id and user, parked ones, traffic counters
//! - `handover`: a parked session as it goes to another host of a cluster
//!   (who asks, what is carried, its bounds)

mod calls;
pub mod handover;
mod outbox;
mod parked;
mod table;

pub use calls::{CallState, REMEMBERED_REPLY_BYTES, SessionCalls};
pub use outbox::{CLOSE_TOO_SLOW, Outbox, OutboxReceiver, OutboxState, Outgoing, PARKED_BYTES};
pub use parked::{MAX_PARKED_PER_USER, Parked, ParkedSessions, ResumeRefused};
pub use table::{ConnectionInfo, Counters, Sessions, session_id, session_name};
