//! A session's bounded outbox. Publishers push without waiting; a session
//! whose outbox is full has fallen behind and is closed with code 4008.
//!
//! While a session is parked (its client dropped and may resume), the
//! outbox keeps collecting what the client misses, up to its resume bound;
//! past it, messages are dropped and the resume is reported incomplete.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

use crate::protocol::PublishFrame;

/// Close code for a client that does not read fast enough.
pub const CLOSE_TOO_SLOW: u16 = 4008;

/// One item for the session's writer.
pub enum Outgoing {
    /// A complete text frame.
    Text(Utf8Bytes),
    /// A room message, rendered by the writer with the subscription's id.
    Publish(PublishFrame, Arc<str>),
}

/// Shared between an outbox's senders and its session.
#[derive(Default)]
pub struct OutboxState {
    overflowed: AtomicBool,
    notify: Notify,
    parked: AtomicBool,
    parked_budget: AtomicUsize,
    lost: AtomicBool,
}

impl OutboxState {
    /// Resolves once the outbox of a live session has overflowed.
    pub async fn overflowed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.overflowed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// From now on, keep at most `budget` more messages and never signal an
    /// overflow (there is no client to close).
    pub fn park(&self, budget: usize) {
        self.parked_budget.store(budget, Ordering::Release);
        self.parked.store(true, Ordering::Release);
    }

    /// Back to live delivery. Returns whether anything was lost while parked.
    pub fn unpark(&self) -> bool {
        self.parked.store(false, Ordering::Release);
        self.overflowed.store(false, Ordering::Release);
        self.lost.swap(false, Ordering::AcqRel)
    }

    /// Records that messages were lost (for example in flight at the drop).
    pub fn mark_lost(&self) {
        self.lost.store(true, Ordering::Release);
    }
}

/// The sending side of a session's outbox. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    state: Arc<OutboxState>,
}

impl Outbox {
    /// An outbox holding up to `capacity` items, with its receiving end.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Outbox {
            tx,
            state: Arc::new(OutboxState::default()),
        };
        (outbox, rx)
    }

    /// The state shared with the session.
    pub fn state(&self) -> &Arc<OutboxState> {
        &self.state
    }

    /// Queues `item`. Returns false if the session is gone or has fallen
    /// behind (it will be closed); never waits.
    pub fn push(&self, item: Outgoing) -> bool {
        let state = &self.state;
        if state.parked.load(Ordering::Acquire) {
            let within_budget = state
                .parked_budget
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
            if !within_budget || self.tx.try_send(item).is_err() {
                state.lost.store(true, Ordering::Release);
                return false;
            }
            return true;
        }
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !state.overflowed.swap(true, Ordering::AcqRel) {
                    state.notify.notify_one();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Free slots right now.
    pub fn free(&self) -> usize {
        self.tx.capacity()
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Waits until `n` slots are free (or the session is gone).
    pub async fn room_for(&self, n: usize) {
        let n = n.min(self.tx.max_capacity());
        // The permits go straight back: this only waits for the writer.
        let _ = self.tx.reserve_many(n).await;
    }

    /// Queues a text frame.
    pub fn text(&self, text: impl Into<Utf8Bytes>) -> bool {
        self.push(Outgoing::Text(text.into()))
    }
}
