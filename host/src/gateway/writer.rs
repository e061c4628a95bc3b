//! A session's writer: drains the outbox into the socket, everything
//! pending then one flush, until the session tells it to stop. It is a
//! future polled by the session's own task (`session::run`), beside the
//! reader, not a task of its own; [`drive`] polls the two.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt};
use tokio::sync::oneshot;

use crate::sessions::{CLOSE_TOO_SLOW, OutboxReceiver, OutboxState, Outgoing};

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
        // Looked at (not waited on) once per batch, before anything is
        // taken: polling the channel in each select below, as before,
        // cost a delivery three polls of it (issue 13).
        match stop_rx.try_recv() {
            Ok(stop) => {
                // Only the preamble can be waiting here, unsent.
                failed |= !batch.is_empty();
                break stop;
            }
            Err(oneshot::error::TryRecvError::Closed) => {
                failed |= !batch.is_empty();
                break Stop::Quit;
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        if batch.is_empty() {
            let first = match rx.try_recv() {
                Some(item) => item,
                None => tokio::select! {
                    biased;
                    stop = &mut stop_rx => break stop.unwrap_or(Stop::Quit),
                    item = rx.recv() => match item {
                        Some(item) => item,
                        None => break Stop::Quit,
                    },
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
        // The write first: one the socket takes at once is done without
        // polling the stop channel; one that waits is interrupted by it.
        tokio::select! {
            biased;
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
            // Stopped mid-write: what was taken from the outbox may be lost.
            stop = &mut stop_rx => {
                failed = true;
                break stop.unwrap_or(Stop::Quit);
            }
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

/// Runs the session's reader side `serve` to its end, polling `writer`
/// beside it in the same task. The writer is polled on every wake; `serve`
/// only when something it waits on woke the task (its wakers are the
/// outbox's [`reader_waker`](OutboxState::reader_waker)). A room message
/// wakes the writer alone, and polling the reader side too (the socket's
/// read readiness, the idle timer, the overflow and shutdown signals) cost
/// every delivery ~10 % of the host's CPU in paced fan-out (issue 13).
pub(super) async fn drive<W, S>(
    mut writer: Pin<&mut W>,
    mut serve: Pin<&mut S>,
    outbox: &Arc<OutboxState>,
) -> S::Output
where
    W: Future,
    S: Future,
{
    /// Forgets the task however the loop ends, so a state that outlives
    /// it (a parked session) does not keep the task alive.
    struct Forget<'a>(&'a OutboxState);
    impl Drop for Forget<'_> {
        fn drop(&mut self) {
            self.0.forget_task();
        }
    }
    let _forget = Forget(outbox);
    let reader = outbox.reader_waker();
    // A resumed session's state may hold no wake: `serve` has never been
    // polled, so it must be now.
    let mut first = true;
    std::future::poll_fn(|cx| {
        // The writer ends only when told to (or when its outbox does):
        // until `finish` takes it, its result waits in `writer`.
        let _ = writer.as_mut().poll(cx);
        if outbox.take_reader_wake(cx.waker()) || std::mem::take(&mut first) {
            serve.as_mut().poll(&mut Context::from_waker(&reader))
        } else {
            Poll::Pending
        }
    })
    .await
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

    /// Room messages wake the writer alone: the reader side is polled
    /// once at the start and then only when one of its own wakers fires,
    /// which it always is.
    #[tokio::test]
    async fn room_messages_do_not_poll_the_reader_side_and_its_wakes_do() {
        use std::sync::{
            Mutex,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        };
        use std::task::Waker;

        let (outbox, rx) = Outbox::new(100);
        let state = outbox.state().clone();
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
        let sink = futures_util::sink::unfold(sent_tx, |tx, msg: Message| async move {
            tx.send(msg).map_err(axum::Error::new)?;
            Ok::<_, axum::Error>(tx)
        });
        let polls = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let reader_waker: Arc<Mutex<Option<Waker>>> = Arc::default();
        let serve = {
            let (polls, done, reader_waker) = (polls.clone(), done.clone(), reader_waker.clone());
            std::future::poll_fn(move |cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                *reader_waker.lock().unwrap() = Some(cx.waker().clone());
                if done.load(Ordering::SeqCst) {
                    Poll::Ready("served")
                } else {
                    Poll::Pending
                }
            })
        };
        let (_stop_tx, stop_rx) = oneshot::channel();
        let session = tokio::spawn(async move {
            let writer = futures_util::future::maybe_done(write_loop(
                Box::pin(sink),
                Vec::new(),
                rx,
                stop_rx,
            ));
            tokio::pin!(writer, serve);
            drive(writer, serve, &state).await
        });
        for i in 0..3 {
            assert!(outbox.text(format!("room message {i}")));
            let sent = tokio::time::timeout(Duration::from_secs(5), sent_rx.recv()).await;
            assert!(
                matches!(sent, Ok(Some(Message::Text(_)))),
                "message {i} sent"
            );
        }
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "the reader side polled once"
        );
        done.store(true, Ordering::SeqCst);
        let waker = reader_waker.lock().unwrap().take().unwrap();
        waker.wake();
        let served = tokio::time::timeout(Duration::from_secs(5), session).await;
        assert_eq!(served.expect("a reader wake polls it").unwrap(), "served");
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

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
