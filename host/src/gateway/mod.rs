//! The websocket gateway: `GET /ws/` upgrades and the per-connection
//! session loop. What a session does with each frame is in `cmd`; its
//! outbox, calls and the session table are in `sessions`.
//!
//! # Layout
//! - `upgrade`: the upgrade handler (limits, buffer sizes, dialect)
//! - `origin`: which sites may open a socket authenticated by cookies
//! - `session`: the connection loop: authenticate, resume or start, read
//!   frames, pace them by unsent replies, close or park
//! - `revoke`: sessions whose credential ends while open: closed with
//!   4003, or downgraded when an account's roles change
//! - `writer`: drains a session's outbox into the socket (polled by the
//!   session's own task)
//! - `close`: close codes, and the code for each read error
//! - `handover`: resume on another host of a cluster: resume tokens name
//!   their host, which hands the parked session over NATS

mod close;
mod handover;
mod origin;
mod revoke;
mod session;
mod upgrade;
mod writer;

#[cfg(test)]
mod tests;

pub use close::{CLOSE_GOING_AWAY, CLOSE_IDLE, DISCONNECTED_REASON, SHUTDOWN_REASON};
pub use handover::{HANDOVER_WAIT, serve as serve_handovers};
pub use revoke::{Rechecked, recheck_account_user};
pub use session::{Connection, Slot, run};
pub use upgrade::{echo, upgrade};
