//! A session's outbox, in two lanes that share one queue (so the client
//! sees frames in the order they were produced):
//!
//! - **unrequested** frames (room messages, resource offers, pushes to a
//!   user, the items of a stream) come at a pace the client does not set.
//!   At most `capacity` of them wait; one more means the client fell
//!   behind, and it is closed with 4008. Publishers never wait.
//! - **replies** to the client's own frames (success/error, ack, a call's
//!   final reply, status, pong) are never refused and never count against
//!   that bound. They are bounded by the session instead: it reads the next
//!   client frame only while fewer than its reply window are unsent
//!   ([`OutboxState::replies_fit`]), each frame yields at most one
//!   immediate reply, and each call still running at most one final reply.
//!
//! So a client is closed as too slow only for what it did not ask for:
//! however long the writer is kept from running (a busy machine), its own
//! replies wait here and reading pauses, instead of overflowing.
//!
//! While a session is parked (its client dropped and may resume), the
//! outbox keeps collecting what the client misses, up to its resume bound
//! in messages and [`PARKED_BYTES`] in bytes of its own (room messages are
//! shared with every subscriber and count only their `requestId`); past
//! either, messages are dropped and the resume is reported incomplete.
//!
//! The queue is a `VecDeque` under a lock, allocated on the first item and
//! released whenever the writer empties it: most connections sit idle, and
//! a channel's first block (32 slots, ~1.8 KB with its header) per idle
//! connection was an eighth of what each one cost (issue 13).
//!
//! The state also wakes the session's reader side ([`OutboxState::reader_waker`]):
//! the session's one task polls its writer on every wake but its reader
//! only when something the reader waits on woke it, so a room message
//! costs the writer's work alone (see `gateway::writer::drive`). It lives
//! here because this is the one allocation each connection already has.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::{protocol::PublishFrame, util::sync::lock};

/// Bytes of its own frames (replies, pushes, stream items) a parked
/// session collects for its client: nobody reads them until it returns,
/// and calls it left running may answer with anything up to a module's
/// largest reply.
pub const PARKED_BYTES: usize = 1 << 20;

/// Close code for a client that does not read fast enough.
pub const CLOSE_TOO_SLOW: u16 = 4008;

/// One item for the session's writer.
pub enum Outgoing {
    /// A complete text frame the client did not ask for.
    Text(Utf8Bytes),
    /// A room message, rendered by the writer with the subscription's id.
    Publish(PublishFrame, Arc<str>),
    /// The answer to one of the client's own frames.
    Reply(Utf8Bytes),
}

impl Outgoing {
    /// Bytes this item holds for its session alone (a room message's data
    /// is shared by every subscriber).
    fn own_bytes(&self) -> usize {
        match self {
            Outgoing::Text(text) | Outgoing::Reply(text) => text.len(),
            Outgoing::Publish(_, request_id) => request_id.len(),
        }
    }
}

/// Shared between an outbox's senders, its receiver and its session.
pub struct OutboxState {
    /// Unrequested frames that may wait before the client is too slow.
    capacity: usize,
    unrequested: AtomicUsize,
    replies: AtomicUsize,
    reply_bytes: AtomicUsize,
    /// Items the writer has taken so far: progress, for stall detection.
    taken: AtomicU64,
    /// The writer took a reply (the reader may be waiting for room).
    reply_taken: Notify,
    overflowed: AtomicBool,
    notify: Notify,
    parked: AtomicBool,
    parked_budget: AtomicUsize,
    parked_bytes: AtomicUsize,
    lost: AtomicBool,
    /// The items, in order; empty (no allocation) while idle.
    queue: Mutex<VecDeque<Outgoing>>,
    /// An item was queued, or the last sender went: wakes the receiver. A
    /// waker slot rather than a `Notify`: waking takes no lock, and of
    /// several pushes before the writer runs only the first wakes it.
    queued: AtomicWaker,
    /// Live [`Outbox`] handles; the receiver sees the end at zero.
    senders: AtomicUsize,
    /// The receiver is gone: nothing queued would ever be sent.
    closed: AtomicBool,
    /// Something the session's reader side waits on happened since its
    /// task last looked.
    reader_woken: AtomicBool,
    /// The session's task, while its loop runs: what a reader wake wakes.
    task: AtomicWaker,
    /// The user's rights changed (an account disabled, logged out, a role
    /// taken away): the session checks its credential again.
    recheck: AtomicBool,
    /// An operator ended the session (the admin page): it closes with
    /// 4003 `disconnected by an operator`.
    disconnect: AtomicBool,
}

impl OutboxState {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            unrequested: AtomicUsize::new(0),
            replies: AtomicUsize::new(0),
            reply_bytes: AtomicUsize::new(0),
            taken: AtomicU64::new(0),
            reply_taken: Notify::new(),
            overflowed: AtomicBool::new(false),
            notify: Notify::new(),
            parked: AtomicBool::new(false),
            parked_budget: AtomicUsize::new(0),
            parked_bytes: AtomicUsize::new(0),
            lost: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicWaker::new(),
            senders: AtomicUsize::new(1),
            closed: AtomicBool::new(false),
            reader_woken: AtomicBool::new(false),
            task: AtomicWaker::new(),
            recheck: AtomicBool::new(false),
            disconnect: AtomicBool::new(false),
        }
    }

    /// Queues `item` unless the receiver is gone; gives it back if it is.
    fn enqueue(&self, item: Outgoing) -> Result<(), Outgoing> {
        {
            let mut queue = lock(&self.queue);
            // Checked under the lock: the receiver's drop empties the
            // queue under it too, so nothing is left behind unsent.
            if self.closed.load(Ordering::Acquire) {
                return Err(item);
            }
            queue.push_back(item);
        }
        self.queued.wake();
        Ok(())
    }

    /// The next item, if one is queued. An emptied queue gives its memory
    /// back (what a burst grew it to would otherwise stay per connection).
    fn dequeue(&self) -> Option<Outgoing> {
        let mut queue = lock(&self.queue);
        let item = queue.pop_front();
        if item.is_none() && queue.capacity() > 0 {
            *queue = VecDeque::new();
        }
        item
    }

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

    /// Unrequested items queued and not yet taken by the writer.
    pub fn unsent(&self) -> usize {
        self.unrequested.load(Ordering::Acquire)
    }

    /// Whether fewer than `count` replies and `bytes` bytes of replies are
    /// unsent: the session may read the next client frame.
    pub fn replies_fit(&self, count: usize, bytes: usize) -> bool {
        self.replies.load(Ordering::Acquire) < count
            && self.reply_bytes.load(Ordering::Acquire) < bytes
    }

    /// Resolves once [`replies_fit`](Self::replies_fit) holds.
    pub async fn replies_drained(&self, count: usize, bytes: usize) {
        loop {
            let taken = self.reply_taken.notified();
            if self.replies_fit(count, bytes) {
                return;
            }
            taken.await;
        }
    }

    /// Items the writer has taken from the outbox so far.
    pub fn progress(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }

    /// From now on, keep at most `budget` more messages (and
    /// [`PARKED_BYTES`]) and never signal an overflow (there is no client
    /// to close).
    pub fn park(&self, budget: usize) {
        self.parked_budget.store(budget, Ordering::Release);
        self.parked_bytes.store(PARKED_BYTES, Ordering::Release);
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

    /// While parked: whether one more message of `bytes` fits the resume
    /// bounds. Records the loss when it does not.
    fn parked_admits(&self, bytes: usize) -> bool {
        let take = |budget: &AtomicUsize, n: usize| {
            budget
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                    left.checked_sub(n)
                })
                .is_ok()
        };
        let admitted = take(&self.parked_budget, 1) && take(&self.parked_bytes, bytes);
        if !admitted {
            self.lost.store(true, Ordering::Release);
        }
        admitted
    }

    /// The waker the session's reader side is polled with: waking it
    /// records the wake and wakes the task registered by
    /// [`take_reader_wake`](Self::take_reader_wake). A clone of this
    /// state, not an allocation.
    pub fn reader_waker(self: &Arc<Self>) -> Waker {
        Waker::from(self.clone())
    }

    /// Registers `task` as the session's task and says whether the reader
    /// side was woken since the last call (clearing it). Registered before
    /// the check, so a wake in between is seen now or wakes `task` again.
    pub fn take_reader_wake(&self, task: &Waker) -> bool {
        self.task.register(task);
        self.reader_woken.swap(false, Ordering::AcqRel)
    }

    /// Asks the session to check its credential again, through the
    /// reader wake: no allocation per session, and a parked session sees
    /// the request when its client resumes.
    pub fn request_recheck(self: &Arc<Self>) {
        self.recheck.store(true, Ordering::Release);
        self.wake_by_ref();
    }

    /// Whether a recheck was asked for since the last call (clearing it).
    /// Polled by the session's reader side, which the request wakes.
    pub fn take_recheck(&self) -> bool {
        self.recheck.swap(false, Ordering::AcqRel)
    }

    /// Asks the session to close (an operator's disconnect), through the
    /// reader wake like [`request_recheck`](Self::request_recheck).
    pub fn request_disconnect(self: &Arc<Self>) {
        self.disconnect.store(true, Ordering::Release);
        self.wake_by_ref();
    }

    /// Whether a disconnect was asked for (the flag stays set: the session
    /// ends on it).
    pub fn disconnect_requested(&self) -> bool {
        self.disconnect.load(Ordering::Acquire)
    }

    /// The session's loop ended: the state no longer holds its task (a
    /// parked session's state outlives it).
    pub fn forget_task(&self) {
        drop(self.task.take());
    }

    /// Accounts for an item the writer took.
    fn took(&self, item: &Outgoing) {
        self.taken.fetch_add(1, Ordering::AcqRel);
        match item {
            Outgoing::Reply(text) => {
                self.reply_bytes.fetch_sub(text.len(), Ordering::AcqRel);
                self.replies.fetch_sub(1, Ordering::AcqRel);
                self.reply_taken.notify_one();
            }
            Outgoing::Text(_) | Outgoing::Publish(..) => {
                self.unrequested.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// A wake for the session's reader side (see
/// [`OutboxState::reader_waker`]).
impl Wake for OutboxState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.reader_woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The sending side of a session's outbox. Cheap to clone.
pub struct Outbox {
    state: Arc<OutboxState>,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.state.senders.fetch_add(1, Ordering::AcqRel);
        Outbox {
            state: self.state.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.state.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state.queued.wake();
        }
    }
}

impl Outbox {
    /// An outbox holding up to `capacity` unrequested items, with its
    /// receiving end.
    pub fn new(capacity: usize) -> (Outbox, OutboxReceiver) {
        // Unbounded as a queue; bounded by the lanes' accounting above.
        let state = Arc::new(OutboxState::new(capacity));
        let receiver = OutboxReceiver {
            state: state.clone(),
        };
        (Outbox { state }, receiver)
    }

    /// The state shared with the session.
    pub fn state(&self) -> &Arc<OutboxState> {
        &self.state
    }

    /// Queues an unrequested item. Returns false if the session is gone or
    /// has fallen behind (it will be closed); never waits.
    pub fn push(&self, item: Outgoing) -> bool {
        let state = &self.state;
        let parked = state.parked.load(Ordering::Acquire);
        if parked && !state.parked_admits(item.own_bytes()) {
            return false;
        }
        if state.unrequested.fetch_add(1, Ordering::AcqRel) >= state.capacity {
            state.unrequested.fetch_sub(1, Ordering::AcqRel);
            if parked {
                state.lost.store(true, Ordering::Release);
            } else if !state.overflowed.swap(true, Ordering::AcqRel) {
                state.notify.notify_one();
            }
            return false;
        }
        if state.enqueue(item).is_err() {
            state.unrequested.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Queues an unrequested text frame.
    pub fn text(&self, text: impl Into<Utf8Bytes>) -> bool {
        self.push(Outgoing::Text(text.into()))
    }

    /// Queues the reply to one of the client's own frames. Never refused
    /// for room (the session paces its reading instead); false only if the
    /// session is gone, or parked past its resume bound.
    pub fn reply(&self, text: impl Into<Utf8Bytes>) -> bool {
        let text = text.into();
        let state = &self.state;
        if state.parked.load(Ordering::Acquire) && !state.parked_admits(text.len()) {
            return false;
        }
        let len = text.len();
        state.replies.fetch_add(1, Ordering::AcqRel);
        state.reply_bytes.fetch_add(len, Ordering::AcqRel);
        if state.enqueue(Outgoing::Reply(text)).is_err() {
            state.reply_bytes.fetch_sub(len, Ordering::AcqRel);
            state.replies.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// The receiving end of an outbox, held by the session's writer (and by a
/// parked session while its client is away).
pub struct OutboxReceiver {
    state: Arc<OutboxState>,
}

impl OutboxReceiver {
    /// The next item; `None` once every sender is gone and nothing is
    /// left.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](Self::recv) as a poll.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outgoing>> {
        if let Some(item) = self.try_recv() {
            return Poll::Ready(Some(item));
        }
        // Registered before looking again: an item queued (or the last
        // sender gone) since the first look is seen now or wakes this.
        self.state.queued.register(cx.waker());
        if let Some(item) = self.try_recv() {
            return Poll::Ready(Some(item));
        }
        if self.state.senders.load(Ordering::Acquire) == 0 {
            // The last sender may have queued something before it went.
            return Poll::Ready(self.try_recv());
        }
        Poll::Pending
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.state.dequeue()?;
        self.state.took(&item);
        Some(item)
    }
}

impl Drop for OutboxReceiver {
    /// Later items are refused (their senders see the session gone), and
    /// those queued are dropped now rather than with the last sender.
    fn drop(&mut self) {
        let dropped = {
            let mut queue = lock(&self.state.queue);
            self.state.closed.store(true, Ordering::Release);
            std::mem::take(&mut *queue)
        };
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_owned())
    }

    #[test]
    fn replies_never_overflow_and_unrequested_frames_do_at_capacity() {
        let (outbox, mut rx) = Outbox::new(4);
        // Far more replies than the capacity: all queued, no overflow.
        for i in 0..1_000 {
            assert!(outbox.reply(text(&format!("r{i}"))));
        }
        assert!(!outbox.state().overflowed.load(Ordering::Acquire));
        for _ in 0..4 {
            assert!(outbox.text(text("room")));
        }
        assert!(!outbox.state().overflowed.load(Ordering::Acquire));
        assert!(!outbox.text(text("one too many")));
        assert!(outbox.state().overflowed.load(Ordering::Acquire));
        // Replies still go in after the overflow was signalled.
        assert!(outbox.reply(text("late")));
        let mut n = 0;
        while rx.try_recv().is_some() {
            n += 1;
        }
        assert_eq!(n, 1_000 + 4 + 1);
        assert_eq!(outbox.state().progress(), n);
    }

    #[test]
    fn order_is_kept_across_lanes() {
        let (outbox, mut rx) = Outbox::new(8);
        outbox.reply(text("a"));
        outbox.text(text("b"));
        outbox.reply(text("c"));
        let order: Vec<String> = std::iter::from_fn(|| rx.try_recv())
            .map(|item| match item {
                Outgoing::Reply(t) | Outgoing::Text(t) => t.as_str().to_owned(),
                Outgoing::Publish(..) => unreachable!(),
            })
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn taking_replies_frees_the_window_by_count_and_by_bytes() {
        let (outbox, mut rx) = Outbox::new(8);
        let state = outbox.state().clone();
        for _ in 0..3 {
            outbox.reply(text("0123456789"));
        }
        assert!(!state.replies_fit(3, 1_000));
        assert!(state.replies_fit(4, 1_000));
        assert!(!state.replies_fit(4, 30));
        rx.try_recv();
        assert!(state.replies_fit(3, 1_000));
        assert!(state.replies_fit(4, 21));
        // Unrequested frames do not take reply room.
        outbox.text(text("a room message that is long"));
        assert!(state.replies_fit(3, 21));
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_when_the_writer_takes_a_reply() {
        let (outbox, mut rx) = Outbox::new(8);
        let state = outbox.state().clone();
        outbox.reply(text("x"));
        outbox.reply(text("y"));
        let waiter = tokio::spawn(async move { state.replies_drained(2, usize::MAX).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert!(rx.recv().await.is_some());
        waiter.await.unwrap();
    }

    #[test]
    fn an_emptied_queue_gives_its_memory_back() {
        let (outbox, mut rx) = Outbox::new(100);
        let capacity = |outbox: &Outbox| lock(&outbox.state().queue).capacity();
        assert_eq!(
            capacity(&outbox),
            0,
            "nothing allocated before the first item"
        );
        for i in 0..50 {
            outbox.reply(text(&format!("r{i}")));
        }
        assert!(capacity(&outbox) >= 50);
        while rx.try_recv().is_some() {}
        assert_eq!(capacity(&outbox), 0, "a burst's queue does not stay");
    }

    #[tokio::test]
    async fn the_receiver_sees_the_end_only_once_every_sender_is_gone() {
        let (outbox, mut rx) = Outbox::new(8);
        let other = outbox.clone();
        outbox.text(text("last words"));
        drop(outbox);
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await.is_some();
            (first, rx.recv().await.is_none())
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a sender is still there");
        drop(other);
        assert_eq!(waiter.await.unwrap(), (true, true));
    }

    #[test]
    fn nothing_is_queued_once_the_receiver_is_gone() {
        let (outbox, rx) = Outbox::new(8);
        outbox.text(text("queued before"));
        drop(rx);
        assert!(!outbox.text(text("after")));
        assert!(!outbox.reply(text("after")));
        assert_eq!(outbox.state().unsent(), 1, "only the first was counted");
        assert_eq!(
            lock(&outbox.state().queue).len(),
            0,
            "and dropped with the receiver"
        );
    }

    #[test]
    fn a_parked_outbox_keeps_its_budget_for_both_lanes() {
        let (outbox, _rx) = Outbox::new(100);
        outbox.state().park(2);
        assert!(outbox.reply(text("r")));
        assert!(outbox.text(text("t")));
        assert!(!outbox.reply(text("over")));
        assert!(!outbox.text(text("over")));
        // Lost, not overflowed: there is no client to close.
        assert!(!outbox.state().overflowed.load(Ordering::Acquire));
        assert!(outbox.state().unpark());
    }

    #[test]
    fn a_parked_outbox_keeps_at_most_its_byte_budget_of_its_own_frames() {
        let (outbox, _rx) = Outbox::new(100);
        outbox.state().park(100);
        let half = "h".repeat(PARKED_BYTES / 2);
        assert!(outbox.reply(text(&half)));
        assert!(outbox.text(text(&half)));
        assert!(!outbox.reply(text("one byte too many")));
        assert!(outbox.state().unpark(), "the resume is reported incomplete");
    }
}
