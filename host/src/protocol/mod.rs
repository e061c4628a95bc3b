//! Client frames in and out (DESIGN §5). Serde only, no I/O.
//!
//! # Layout
//! - `frame`: [`decode`] of client text frames into [`ClientFrame`], and the
//!   server frames as exact JSON text
//! - `publish`: [`PublishFrame`], the fan-out fast path (data encoded once,
//!   only the subscription's `requestId` spliced in per subscriber)

pub mod frame;
pub mod publish;

pub use frame::{
    ClientFrame, DecodeError, PONG, ack, authorized, call_error, decode, error, push, reply,
    resource_offer, resume_failed, resumed, success, unauthorized,
};
pub use publish::PublishFrame;
