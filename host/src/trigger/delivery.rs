//! What the AMQP source does with one message body: publish it to its
//! rooms through the same path as `POST /trigger/`, or drop it with a
//! warning that says what was wrong and what to do.
//!
//! Either way the caller acknowledges the message: a body that is bad now
//! is bad on every redelivery, so requeueing it would only loop.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use crate::{
    state::AppState,
    util::budget::{Take, Window},
};

use super::message::{self, MessageError};

/// Bytes of a dropped body quoted in its warning.
const PREVIEW_BYTES: usize = 200;

/// Warnings about dropped messages per second; a publisher sending nothing
/// but bad messages must not flood the log (the rest are counted, and
/// `modhost_amqp_messages_dropped_total` has them all).
const WARNINGS_PER_SECOND: u32 = 10;

/// Publishes the bodies of one consumer's deliveries.
pub(super) struct Dispatcher {
    state: Arc<AppState>,
    exchange: String,
    max_bytes: usize,
    warnings: Window,
}

/// Why a body was dropped.
enum Dropped {
    TooLarge,
    Message(MessageError),
}

impl Dispatcher {
    pub(super) fn new(state: Arc<AppState>, exchange: &str, max_bytes: usize) -> Self {
        Self {
            state,
            exchange: exchange.to_owned(),
            max_bytes,
            warnings: Window::default(),
        }
    }

    /// Publishes `body` to its rooms, or drops it with a warning.
    pub(super) fn dispatch(&mut self, body: &[u8], routing_key: &str) {
        let counters = &self.state.sessions.counters;
        counters
            .amqp_messages_received
            .fetch_add(1, Ordering::Relaxed);
        let outcome = if body.len() > self.max_bytes {
            Err(Dropped::TooLarge)
        } else {
            message::publish(&self.state, body).map_err(Dropped::Message)
        };
        if let Err(dropped) = outcome {
            counters
                .amqp_messages_dropped
                .fetch_add(1, Ordering::Relaxed);
            self.warn(&dropped, body, routing_key);
        }
    }

    fn warn(&mut self, dropped: &Dropped, body: &[u8], routing_key: &str) {
        let exchange = self.exchange.as_str();
        match self.warnings.take(WARNINGS_PER_SECOND, Instant::now()) {
            Take::Allowed { over: 0 } => {}
            Take::Allowed { over } => tracing::warn!(
                exchange,
                "{over} more malformed AMQP messages were dropped earlier without a warning each"
            ),
            Take::FirstOver => {
                tracing::warn!(
                    exchange,
                    "more than {WARNINGS_PER_SECOND} malformed AMQP messages per second; the rest of this second's are dropped without a warning each"
                );
                return;
            }
            Take::Over => return,
        }
        let (what, advice) = match dropped {
            Dropped::TooLarge => (
                format!(
                    "it is {} bytes, more than trigger.amqp.max_message_bytes = {}",
                    body.len(),
                    self.max_bytes
                ),
                "publish smaller messages, or raise trigger.amqp.max_message_bytes",
            ),
            Dropped::Message(e) => (e.to_string(), e.advice()),
        };
        tracing::warn!(
            exchange,
            routing_key,
            bytes = body.len(),
            "AMQP message dropped (acknowledged, not requeued): {what}; {advice}; it starts with {}",
            preview(body)
        );
    }
}

/// The first [`PREVIEW_BYTES`] of `body`, quoted and escaped so that any
/// bytes stay on one log line.
fn preview(body: &[u8]) -> String {
    let cut = &body[..body.len().min(PREVIEW_BYTES)];
    let more = if body.len() > PREVIEW_BYTES {
        "…"
    } else {
        ""
    };
    format!("{:?}{more}", String::from_utf8_lossy(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_is_short_escaped_and_one_line() {
        assert_eq!(preview(b"{\"rooms\":1}"), r#""{\"rooms\":1}""#);
        // Control characters are escaped; bytes that are not UTF-8 become U+FFFD.
        assert_eq!(preview(b"a\nb\xff\x1b"), "\"a\\nb\u{fffd}\\u{1b}\"");
        let long = preview(&[b'x'; 5000]);
        assert_eq!(long, format!("{:?}…", "x".repeat(PREVIEW_BYTES)));
    }
}
