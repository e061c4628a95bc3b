//! A session's bounded outbox. Publishers push without waiting; a session
//! whose outbox is full has fallen behind and is closed with code 4008.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
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

/// The sending side of a session's outbox. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    overflow: Arc<Overflow>,
}

/// Set once when the outbox overflows; the session loop waits on it.
#[derive(Default)]
pub struct Overflow {
    happened: AtomicBool,
    notify: Notify,
}

impl Overflow {
    /// Resolves once the outbox has overflowed.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.happened.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl Outbox {
    /// An outbox holding up to `capacity` items, with its receiving end.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Outgoing>, Arc<Overflow>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflow = Arc::new(Overflow::default());
        (
            Outbox {
                tx,
                overflow: overflow.clone(),
            },
            rx,
            overflow,
        )
    }

    /// Queues `item`. Returns false if the session is gone or has fallen
    /// behind (it will be closed); never waits.
    pub fn push(&self, item: Outgoing) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflow.happened.swap(true, Ordering::AcqRel) {
                    self.overflow.notify.notify_one();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a text frame.
    pub fn text(&self, text: impl Into<Utf8Bytes>) -> bool {
        self.push(Outgoing::Text(text.into()))
    }

    /// Whether the outbox has overflowed.
    pub fn overflowed(&self) -> bool {
        self.overflow.happened.load(Ordering::Acquire)
    }
}
