//! A frame that is not a command: not JSON, too deep, or of an unknown
//! `type`. It gets an error; the connection stays open.

use crate::protocol::WireError;

use super::context::Session;

/// A frame refused before it became a command.
pub struct Unknown {
    /// Why.
    pub error: WireError,
}

impl Unknown {
    /// Refused for `error`.
    pub fn from_frame(error: WireError) -> Self {
        Self { error }
    }

    /// Answers the error.
    pub fn apply(self, session: &mut Session) {
        session.reply(session.dialect.unreadable(self.error, &session.name));
    }
}
