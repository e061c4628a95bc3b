//! Client commands: one file each, mini-redis style. A text frame is
//! decoded into a [`Command`] here (the whole dispatch table), then applied
//! to the [`Session`] that received it.
//!
//! # Layout
//! - `context`: [`Session`], a client as the commands see it
//! - `offer`: the resource offer (modules and commands a user may call)
//! - `ping`, `subscribe`, `unsubscribe`, `call`, `status`: one command each
//! - `unknown`: a frame that is not a command (bad JSON, unknown `type`)

mod call;
mod context;
mod offer;
mod ping;
mod status;
mod subscribe;
mod unknown;
mod unsubscribe;

pub use call::{Call, MAX_COMMAND_NAME_BYTES};
pub use context::{Session, SessionParts};
pub use ping::Ping;
pub use status::Status;
pub use subscribe::Subscribe;
pub use unknown::Unknown;
pub use unsubscribe::Unsubscribe;

use crate::protocol::{self, ClientFrame, DecodeError, WireError};

/// One client frame, decoded.
pub enum Command {
    /// The raw keep-alive.
    Ping(Ping),
    /// Subscribe to a room.
    Subscribe(Subscribe),
    /// End a subscription.
    Unsubscribe(Unsubscribe),
    /// Call a module command.
    Call(Call),
    /// The host's counters.
    Status(Status),
    /// Not a command; answered with an error.
    Unknown(Unknown),
}

impl Command {
    /// Decodes one text frame (nested at most `max_depth` deep).
    pub fn from_text(text: &str, max_depth: usize) -> Command {
        match protocol::decode(text, max_depth) {
            Ok(frame) => Command::from_frame(frame),
            Err(DecodeError::TooDeep { .. }) => {
                Command::Unknown(Unknown::from_frame(WireError::TooDeep))
            }
            Err(DecodeError::RequestIdTooLong { .. }) => {
                Command::Unknown(Unknown::from_frame(WireError::RequestIdTooLong))
            }
            Err(_) => Command::Unknown(Unknown::from_frame(WireError::NonJson)),
        }
    }

    /// The command a decoded frame asks for.
    pub fn from_frame(frame: ClientFrame) -> Command {
        match frame {
            ClientFrame::Ping => Command::Ping(Ping),
            ClientFrame::Subscribe {
                room,
                request_id,
                since,
            } => Command::Subscribe(Subscribe::from_frame(room, request_id, since)),
            ClientFrame::Unsubscribe { request_id } => {
                Command::Unsubscribe(Unsubscribe::from_frame(request_id))
            }
            ClientFrame::Call {
                module,
                command,
                params,
                request_id,
            } => Command::Call(Call::from_frame(module, command, params, request_id)),
            ClientFrame::Status => Command::Status(Status),
            ClientFrame::Unknown => {
                Command::Unknown(Unknown::from_frame(WireError::MessageTypeNotAllowed))
            }
        }
    }

    /// Runs the command for `session`; every reply goes to its outbox.
    pub fn apply(self, session: &mut Session) {
        match self {
            Command::Ping(cmd) => cmd.apply(session),
            Command::Subscribe(cmd) => cmd.apply(session),
            Command::Unsubscribe(cmd) => cmd.apply(session),
            Command::Call(cmd) => cmd.apply(session),
            Command::Status(cmd) => cmd.apply(session),
            Command::Unknown(cmd) => cmd.apply(session),
        }
    }
}
