//! [`Window`]: a per-second budget, for anything that must say "at most N
//! per second, and how many were over" (module log lines and publishes,
//! warnings about dropped AMQP messages).

use std::time::Instant;

/// A one-second window of a budget.
pub(crate) struct Window {
    start: Instant,
    used: u32,
    over: u64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            used: 0,
            over: 0,
        }
    }
}

/// The verdict of [`Window::take`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// Within the budget; `over` were refused in the window that just ended.
    Allowed { over: u64 },
    /// The first one over the budget in this window.
    FirstOver,
    /// Over the budget again in this window.
    Over,
}

impl Window {
    /// Charges one to the budget of `limit` per second, as of `now`.
    pub(crate) fn take(&mut self, limit: u32, now: Instant) -> Take {
        if now.duration_since(self.start).as_secs() >= 1 {
            let over = self.over;
            *self = Window {
                start: now,
                used: 1,
                over: 0,
            };
            return Take::Allowed { over };
        }
        if self.used >= limit {
            self.over += 1;
            return if self.over == 1 {
                Take::FirstOver
            } else {
                Take::Over
            };
        }
        self.used += 1;
        Take::Allowed { over: 0 }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_window_allows_its_limit_then_refuses_until_the_next_second() {
        let t0 = Instant::now();
        let mut w = Window {
            start: t0,
            used: 0,
            over: 0,
        };
        for _ in 0..3 {
            assert_eq!(w.take(3, t0), Take::Allowed { over: 0 });
        }
        assert_eq!(w.take(3, t0), Take::FirstOver);
        assert_eq!(w.take(3, t0 + Duration::from_millis(999)), Take::Over);
        assert_eq!(w.take(3, t0 + Duration::from_millis(999)), Take::Over);
        // The next second reports how many were refused, once.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(w.take(3, t1), Take::Allowed { over: 3 });
        assert_eq!(w.take(3, t1), Take::Allowed { over: 0 });
        assert_eq!(w.take(3, t1), Take::Allowed { over: 0 });
        assert_eq!(w.take(3, t1), Take::FirstOver);
    }
}
