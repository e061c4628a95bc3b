//! Client frames in and out (DESIGN §5). Serde only, no I/O.
//!
//! # Layout
//! - `decode`: [`decode`] of client text frames into [`ClientFrame`]
//! - `error`: [`WireError`], the codes of `{"code":"error"}` replies
//! - `encode`: the server frames as exact JSON text
//! - `dialect`: [`Dialect`], how a session writes its frames, chosen at
//!   upgrade, and the [`StatusReport`] it renders
//! - `extended`: [`Extended`], modhost's own dialect (`modhost.v1`)
//! - `legacy`: [`Legacy`], high-templar 3.1 exactly
//! - `publish`: [`PublishFrame`], the fan-out fast path (data encoded once,
//!   only the subscription's `requestId` spliced in per subscriber)
//! - `position`: [`StreamPosition`], an offset and epoch in a room's history

mod decode;
mod dialect;
pub mod encode;
mod error;
mod extended;
mod legacy;
mod position;
mod publish;

pub use decode::{ClientFrame, DecodeError, MAX_REQUEST_ID_BYTES, PONG, decode};
pub use dialect::{Dialect, SUBPROTOCOL, StatusReport};
pub use error::WireError;
pub use extended::{CLOSE_REVOKED, CLOSE_UNAUTHORIZED, Extended, SHUTDOWN_REASON};
pub use legacy::Legacy;
pub use position::{MAX_EPOCH_BYTES, StreamPosition};
pub use publish::{MAX_PUBLISH_BYTES, PublishFrame};

#[cfg(test)]
mod tests;
