//! The cluster's room history on JetStream: one stream, `<PREFIX>_HISTORY`
//! on `<prefix>.h.>`, made or updated at start with `[history]`'s bounds,
//! a task that publishes to it in order, and a task that reads all of it
//! in order into this host's [`Mirror`](super::mirror::Mirror) and
//! delivers each publication numbered by its stream sequence.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{
    Client,
    jetstream::{
        self, Context,
        consumer::{DeliverPolicy, pull},
        stream::{self, DiscardPolicy, StorageType},
    },
};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::config::HistoryConfig;

use super::{
    Shared,
    link::{Status, backoff},
};

/// Publications waiting for the stream (as for core publishes).
const SEND_QUEUE: usize = 8192;
/// A start waits this long for what the stream holds to be read, so the
/// first clients can recover from it; past it, they get `complete:false`
/// until it is.
const CATCH_UP: Duration = Duration::from_secs(10);
/// … but only this long while the link is not up.
const NO_LINK: Duration = Duration::from_secs(1);

/// The stream's name: the prefix with what a stream name may not hold
/// (`.`, `*`, `>`, whitespace) replaced, upper-cased, then `_HISTORY`.
pub(super) fn stream_name(prefix: &str) -> String {
    let safe: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}_HISTORY")
}

/// The stream's configuration: every `[[history.rooms]]` entry's
/// publications, at most the largest `size` per subject (a room's subject
/// is its first covered room's), for the longest `age_secs`, and
/// `[history] max_bytes` in all, the oldest dropped first. Each host's
/// mirror applies each entry's own bounds.
pub(super) fn stream_config(prefix: &str, history: &HistoryConfig) -> stream::Config {
    let size = history.rooms.iter().map(|r| r.size).max().unwrap_or(1);
    let age = history
        .rooms
        .iter()
        .map(|r| r.age)
        .max()
        .unwrap_or(Duration::ZERO);
    stream::Config {
        name: stream_name(prefix),
        subjects: vec![format!("{prefix}.h.>")],
        max_messages_per_subject: i64::try_from(size.max(1)).unwrap_or(i64::MAX),
        max_age: age,
        max_bytes: i64::try_from(history.max_bytes).unwrap_or(i64::MAX),
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        num_replicas: 1,
        ..Default::default()
    }
}

/// A stream's epoch: its creation time, so a stream made anew (deleted,
/// or lost with the server's store) is a new epoch.
fn epoch_of(info: &stream::Info) -> String {
    let nanos = u64::try_from(info.created.unix_timestamp_nanos()).unwrap_or(0);
    format!("{nanos:016x}")
}

/// The engine's handle on the history publisher.
pub(super) struct HistoryStream {
    publish: mpsc::Sender<(String, Bytes)>,
    status: Status,
    /// The reader is reading the stream (so it exists, and what is
    /// published to it comes back).
    reading: Arc<AtomicBool>,
}

impl HistoryStream {
    /// Makes or updates the stream, starts the publisher and the reader,
    /// and waits (at most [`CATCH_UP`]) until what the stream holds is
    /// read.
    pub(super) async fn start(
        client: Client,
        prefix: &str,
        history: &HistoryConfig,
        shared: &Arc<Shared>,
    ) -> HistoryStream {
        let js = jetstream::new(client);
        let status = shared.status.clone();
        let (publish, to_send) = mpsc::channel(SEND_QUEUE);
        tokio::spawn(publisher(js.clone(), to_send, status.clone()));
        let (ready, caught_up) = oneshot::channel();
        let reading = Arc::new(AtomicBool::new(false));
        tokio::spawn(reader(
            js,
            stream_config(prefix, history),
            Arc::downgrade(shared),
            ready,
            reading.clone(),
        ));
        if !catch_up(caught_up, &status).await {
            tracing::warn!(
                "cluster: the room history on NATS is not read yet; clients recovering meanwhile get complete:false"
            );
        }
        HistoryStream {
            publish,
            status,
            reading,
        }
    }

    /// Whether a publication sent now will be read back: the stream is
    /// being read. Until then (NATS just back, the stream being made)
    /// publications are delivered on this host alone.
    pub(super) fn ready(&self) -> bool {
        self.reading.load(Ordering::Relaxed)
    }

    /// Queues a publication for the stream; never waits.
    pub(super) fn publish(&self, subject: String, payload: Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.publish.try_send((subject, payload)) {
            self.status.dropped();
        }
    }
}

/// Waits until the reader has read what the stream held, at most
/// [`CATCH_UP`], and no longer than [`NO_LINK`] while there is no link (a
/// NATS server that is down must not hold up the start); true when read.
async fn catch_up(mut caught_up: oneshot::Receiver<()>, status: &Status) -> bool {
    let start = tokio::time::Instant::now();
    loop {
        tokio::select! {
            read = &mut caught_up => return read.is_ok(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        let waited = start.elapsed();
        if waited >= CATCH_UP || (waited >= NO_LINK && !status.connected()) {
            return false;
        }
    }
}

/// Publishes in the order queued. Acknowledgements are awaited aside: a
/// lost one is logged and counted, never retried (the stream may hold it
/// already, and a second copy would be delivered twice).
async fn publisher(js: Context, mut to_send: mpsc::Receiver<(String, Bytes)>, status: Status) {
    while let Some((subject, payload)) = to_send.recv().await {
        match js.publish(subject, payload).await {
            Ok(ack) => {
                let status = status.clone();
                tokio::spawn(async move {
                    if let Err(e) = ack.await {
                        tracing::warn!(
                            "cluster: the history stream did not confirm a publication ({e})"
                        );
                        status.dropped();
                    }
                });
            }
            Err(e) => {
                tracing::warn!("cluster: a publication was not sent to the history stream ({e})");
                status.dropped();
            }
        }
    }
}

/// Reads the stream for as long as the engine lives, starting over (with
/// backoff) whenever reading stops.
async fn reader(
    js: Context,
    config: stream::Config,
    shared: Weak<Shared>,
    ready: oneshot::Sender<()>,
    reading: Arc<AtomicBool>,
) {
    let mut ready = Some(ready);
    let mut attempts = 0;
    loop {
        let result = read(&js, &config, &shared, &mut ready, &reading).await;
        reading.store(false, Ordering::Relaxed);
        match result {
            Ok(Reading::Stop) => return,
            Ok(Reading::Again) => attempts = 0,
            Err(e) if attempts == 0 => {
                tracing::warn!(
                    "cluster: reading the room history from NATS stopped ({e}); retrying"
                )
            }
            Err(e) => tracing::debug!("cluster: reading the room history from NATS: {e}"),
        }
        tokio::time::sleep(backoff(attempts)).await;
        attempts += 1;
    }
}

enum Reading {
    /// The engine is gone, or keeps no history this stream could fill.
    Stop,
    /// The messages ended; read again.
    Again,
}

/// One pass: the stream made or updated, the mirror told which stream it
/// is, then every publication after where it stands, delivered.
async fn read(
    js: &Context,
    config: &stream::Config,
    shared: &Weak<Shared>,
    ready: &mut Option<oneshot::Sender<()>>,
    reading: &AtomicBool,
) -> Result<Reading, async_nats::Error> {
    let info = js.create_or_update_stream(config.clone()).await?;
    let last = info.state.last_sequence;
    let Some(start) = shared
        .upgrade()
        .and_then(|s| s.local.resync_history(&epoch_of(&info), last))
    else {
        return Ok(Reading::Stop);
    };
    let mut signal = |seq: u64| {
        if seq >= last
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(());
        }
    };
    if info.state.messages == 0 {
        signal(last);
    }
    let stream = js.get_stream(&config.name).await?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    reading.store(true, Ordering::Relaxed);
    signal(start.saturating_sub(1));
    while let Some(message) = messages.next().await {
        let message = message?;
        let seq = message.info()?.stream_sequence;
        let Some(shared) = shared.upgrade() else {
            return Ok(Reading::Stop);
        };
        shared.receive_numbered(&message.payload, seq);
        signal(seq);
    }
    Ok(Reading::Again)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_hold_no_dots_stars_or_spaces() {
        assert_eq!(stream_name("modhost"), "MODHOST_HISTORY");
        assert_eq!(stream_name("a.b *>c"), "A_B___C_HISTORY");
    }

    #[test]
    fn the_stream_takes_the_largest_bounds_of_the_history_rooms() {
        let history = HistoryConfig {
            max_bytes: 1 << 20,
            persist: false,
            rooms: vec![
                crate::config::HistoryRule {
                    room: serde_json::json!({"chat": "*"}),
                    size: 10,
                    age: Duration::from_secs(60),
                },
                crate::config::HistoryRule {
                    room: serde_json::json!({"feed": "*"}),
                    size: 3,
                    age: Duration::from_secs(600),
                },
            ],
        };
        let config = stream_config("mh", &history);
        assert_eq!(config.name, "MH_HISTORY");
        assert_eq!(config.subjects, vec!["mh.h.>".to_owned()]);
        assert_eq!(config.max_messages_per_subject, 10);
        assert_eq!(config.max_age, Duration::from_secs(600));
        assert_eq!(config.max_bytes, 1 << 20);
        assert_eq!(config.discard, DiscardPolicy::Old);
    }
}
