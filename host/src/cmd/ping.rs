//! `ping` (the raw text, not JSON): the keep-alive, answered `pong`.

use super::context::Session;

/// The raw keep-alive.
pub struct Ping;

impl Ping {
    /// Answers `pong`.
    pub fn apply(self, session: &mut Session) {
        session.reply(session.dialect.pong().to_owned());
    }
}
