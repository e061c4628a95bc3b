//! [`Backoff`]: how long the AMQP source waits before it tries the broker
//! again: 0.5 s, doubling up to 30 s, back to 0.5 s after a connection that
//! got as far as consuming.
//!
//! The first retry is quick because the usual cause is a broker restart or
//! a dropped connection that a second attempt fixes; the cap keeps a broker
//! that is down for hours from being hammered, and bounds how late the host
//! notices it is back.

use std::time::Duration;

/// The first delay, and the one after a healthy connection.
const FIRST: Duration = Duration::from_millis(500);
/// The longest delay.
const MAX: Duration = Duration::from_secs(30);

/// Exponential reconnect delays.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// The delay before the next attempt; each call doubles the one after
    /// it, up to the cap.
    pub(super) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        delay
    }

    /// A connection was healthy: the next failure starts over quickly.
    pub(super) fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_after_a_reset() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [
                500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
            ]
        );
        b.reset();
        assert_eq!(b.next_delay(), FIRST);
    }
}
