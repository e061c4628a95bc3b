//! Client frames in and out (DESIGN §5). Serde only, no I/O.
//!
//! # Layout
//! - `frame`: [`decode`] of client text frames into [`ClientFrame`], and the
//!   server frames as exact JSON text

pub mod frame;

pub use frame::{
    ClientFrame, DecodeError, PONG, ack, authorized, call_error, decode, error, reply,
    resource_offer, resumed, success, unauthorized,
};
