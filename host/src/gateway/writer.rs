//! A session's writer: drains the outbox into the socket, everything
//! pending then one flush, until the session tells it to stop. It is a
//! future polled by the session's own task (`session::run`), beside the
//! reader, not a task of its own.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt};
use tokio::sync::oneshot;

use crate::sessions::{CLOSE_TOO_SLOW, OutboxReceiver, Outgoing};

/// How long the last frames may take to go out once the session ends.
const FAREWELL: Duration = Duration::from_millis(500);

/// Items the writer sends per flush at most.
pub(super) const WRITE_BATCH: usize = 128;

/// Rendered bytes the writer takes from the outbox per flush at most: what
/// a client that stops reading pins in the host beyond its outbox (plus
/// one message, and tungstenite's small write buffer). Counting items
/// alone let a stuck client hold 128 rendered 32 KiB publishes (4 MiB).
pub(super) const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// What the writer is told when the session ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    /// Send the final replies and a close frame with this code and reason.
    Close(u16, &'static str),
    /// The client closed: send the close reply the websocket layer queued
    /// when it read the client's close frame (RFC 6455 §5.5.1).
    AnswerClose,
    /// The connection is gone: just stop.
    Quit,
}

/// What the writer hands back when it stops: the outbox's receiving end
/// (a parked session keeps collecting into it).
pub(super) struct WriterBack {
    pub(super) rx: OutboxReceiver,
    /// A write failed with messages taken from the outbox: they are lost.
    pub(super) lost_in_flight: bool,
}

/// Drains the outbox into the socket: everything pending, then one flush.
/// A stop request interrupts even a write blocked on a client that does
/// not read.
pub(super) async fn write_loop<W>(
    mut sink: W,
    preamble: Vec<String>,
    mut rx: OutboxReceiver,
    mut stop_rx: oneshot::Receiver<Stop>,
) -> WriterBack
where
    W: Sink<Message> + Unpin,
{
    let mut bytes = preamble.iter().map(String::len).sum::<usize>();
    let mut batch: Vec<Message> = preamble
        .into_iter()
        .map(|t| Message::Text(t.into()))
        .collect();
    let mut failed = false;
    let stop: Stop = loop {
        if batch.is_empty() {
            let first = tokio::select! {
                biased;
                stop = &mut stop_rx => break stop.unwrap_or(Stop::Quit),
                item = rx.recv() => match item {
                    Some(item) => item,
                    None => break Stop::Quit,
                },
            };
            batch.push(render(first, &mut bytes));
        }
        while batch.len() < WRITE_BATCH && bytes < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Some(item) => batch.push(render(item, &mut bytes)),
                None => break,
            }
        }
        let write = async {
            bytes = 0;
            for msg in batch.drain(..) {
                sink.feed(msg).await?;
            }
            sink.flush().await
        };
        tokio::select! {
            biased;
            // Stopped mid-write: what was taken from the outbox may be lost.
            stop = &mut stop_rx => {
                failed = true;
                break stop.unwrap_or(Stop::Quit);
            }
            result = write => if result.is_err() {
                // The connection is gone or closing (a write after the
                // client's close frame fails); wait for the session to
                // decide, then at most answer the close.
                failed = true;
                match (&mut stop_rx).await.unwrap_or(Stop::Quit) {
                    Stop::AnswerClose => break Stop::AnswerClose,
                    Stop::Close(..) | Stop::Quit => break Stop::Quit,
                }
            },
        }
        // Sent, so empty: what a burst grew it to is not kept by a
        // connection that goes idle.
        batch.shrink_to_fit();
    };
    match stop {
        Stop::Close(code, reason) => farewell(&mut sink, &mut rx, code, reason).await,
        Stop::AnswerClose => {
            let _ = tokio::time::timeout(FAREWELL, sink.flush()).await;
        }
        Stop::Quit => {}
    }
    WriterBack {
        rx,
        lost_in_flight: failed,
    }
}

/// Sends what is queued (final replies) and the close frame, within half
/// a second; a client closed for not reading gets only the close frame.
async fn farewell<W>(sink: &mut W, rx: &mut OutboxReceiver, code: u16, reason: &'static str)
where
    W: Sink<Message> + Unpin,
{
    let drain = code != CLOSE_TOO_SLOW;
    let send = async {
        while drain && let Some(item) = rx.try_recv() {
            sink.feed(render(item, &mut 0)).await?;
        }
        sink.feed(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await?;
        sink.flush().await
    };
    let _ = tokio::time::timeout(FAREWELL, send).await;
}

/// The item as a websocket message; adds its length to `bytes`.
fn render(item: Outgoing, bytes: &mut usize) -> Message {
    let text = match item {
        Outgoing::Text(text) | Outgoing::Reply(text) => text,
        Outgoing::Publish(frame, request_id) => frame.render(&request_id).into(),
    };
    *bytes += text.len();
    Message::Text(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::Outbox;

    /// A client that reads nothing: the writer takes at most a batch's
    /// bytes (plus one message) from the outbox, however many are queued.
    #[tokio::test]
    async fn a_blocked_writer_holds_at_most_a_batch_of_bytes() {
        let (outbox, rx) = Outbox::new(1_000);
        let big = "y".repeat(32 * 1024);
        for _ in 0..100 {
            assert!(outbox.text(big.clone()));
        }
        let never_ready = futures_util::sink::unfold((), |(), _msg: Message| async {
            std::future::pending::<Result<(), axum::Error>>().await
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let writer = tokio::spawn(write_loop(Box::pin(never_ready), Vec::new(), rx, stop_rx));
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop_tx.send(Stop::Quit).unwrap();
        let mut back = writer.await.unwrap();
        let mut left = 0;
        while back.rx.try_recv().is_some() {
            left += 1;
        }
        let taken = 100 - left;
        assert!(back.lost_in_flight);
        assert_eq!(taken, WRITE_BATCH_BYTES / big.len(), "taken {taken}");
    }
}
