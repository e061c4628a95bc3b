//! A folder watched on a thread of its own: the part the module watcher and
//! the config watcher share (DESIGN §4).
//!
//! Both watch a *folder*, not a file: publishers and editors replace files
//! by renaming a new one over them, which would orphan a watch on the old
//! inode. Both need a plain thread, because what they do with an event
//! (load a library, read and validate a config) blocks. And both want the
//! same start and stop rules, which are the reason this file exists:
//!
//! - [`FileWatcher::start`] returns only once the folder is watched, so a
//!   caller knows at once whether it runs with or without live reload, and
//!   a file written right after `start` returns is noticed;
//! - [`FileWatcher::stop`] waits for the thread (a reload in progress ends
//!   first); dropping the handle only asks it to stop, because a drop may
//!   happen on an async worker, which must not block.
//!
//! What a change means is the caller's business: its loop receives
//! [`Batch`]es from [`Events::wait`] and decides.

use std::{path::PathBuf, sync::mpsc, thread::JoinHandle, time::Duration};

use notify_debouncer_full::{
    DebounceEventResult, DebouncedEvent, RecommendedCache, new_debouncer,
    notify::{self, RecommendedWatcher, RecursiveMode},
};

/// The debouncer a watcher loop receives, to watch more folders (the module
/// watcher adds the verify key folders) or to keep alive.
pub(crate) type Debouncer = notify_debouncer_full::Debouncer<RecommendedWatcher, RecommendedCache>;

enum Msg {
    Fs(DebounceEventResult),
    Stop,
}

/// The running watcher thread; stops when [`FileWatcher::stop`] is called
/// or it is dropped.
pub(crate) struct FileWatcher {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl FileWatcher {
    /// Spawns a thread named `thread_name` that watches `dir` (not
    /// recursively), hands over events once a path has been quiet for
    /// `debounce`, and runs `run` with the events and the debouncer.
    /// Returns once the folder is watched, or `Err` saying why it cannot be.
    /// `label` names the thread in those errors ("config watcher thread").
    pub(crate) fn start(
        thread_name: &str,
        label: &str,
        dir: PathBuf,
        debounce: Duration,
        run: impl FnOnce(Events, Debouncer) + Send + 'static,
    ) -> Result<FileWatcher, String> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let events = tx.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                let debouncer = new_debouncer(debounce, None, move |r| {
                    let _ = events.send(Msg::Fs(r));
                })
                .map_err(|e| format!("cannot start a file watcher: {e}"))
                .and_then(|mut d| {
                    d.watch(&dir, RecursiveMode::NonRecursive)
                        .map(|()| d)
                        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))
                });
                match debouncer {
                    Ok(d) => {
                        let _ = ready_tx.send(Ok(()));
                        run(Events { rx }, d);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| format!("cannot start the {label}: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(FileWatcher {
                tx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(format!("the {label} ended before it started")),
        }
    }

    /// Stops watching and waits until the thread's loop has returned
    /// (blocking: call it from a blocking context).
    pub(crate) fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        // Not joined here: a drop may happen on an async worker.
        let _ = self.tx.send(Msg::Stop);
    }
}

/// The watcher thread's side: debounced events as they arrive.
pub(crate) struct Events {
    rx: mpsc::Receiver<Msg>,
}

/// What arrived since the last [`Events::wait`].
#[derive(Default)]
pub(crate) struct Batch {
    /// The debounced events, in arrival order.
    pub(crate) events: Vec<DebouncedEvent>,
    /// Errors the watcher reported; a change may be noticed late.
    pub(crate) errors: Vec<notify::Error>,
    /// The watcher was asked to stop (or its handle is gone): the loop
    /// should return after logging `errors`, without acting on `events`.
    pub(crate) stop: bool,
}

impl Events {
    /// Waits for the next message, at most `timeout` (`None`: no limit),
    /// then takes whatever else is queued too, so that a burst is handled
    /// in one pass. An empty batch means the time ran out. Messages after a
    /// stop request are left unread: the loop is about to return.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Batch {
        let stopped = Batch {
            stop: true,
            ..Batch::default()
        };
        let first = match timeout {
            None => match self.rx.recv() {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvError) => return stopped,
            },
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return stopped,
            },
        };
        let mut batch = Batch::default();
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| self.rx.try_recv().ok()))
        {
            match msg {
                Msg::Stop => {
                    batch.stop = true;
                    break;
                }
                Msg::Fs(Ok(events)) => batch.events.extend(events),
                Msg::Fs(Err(errors)) => batch.errors.extend(errors),
            }
        }
        batch
    }
}
