//! The connection to the NATS server: how it is made (credentials, TLS,
//! reconnect backoff), its state for `/health`, and the two tasks that
//! use it: one publishes in order, one keeps a subscription per subject
//! the engine listens on and hands what arrives to [`Shared::receive`].

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{Client, ConnectOptions, Event};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::config::ClusterConfig;

use super::Shared;

/// Publications waiting for the connection; past this (NATS down for
/// long) they are dropped for other hosts and counted.
const SEND_QUEUE: usize = 8192;
/// The first reconnect waits this long, each next one twice as long …
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// … up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why the cluster connection could not be set up. A server that is down
/// is not one: it is retried in the background.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error(
        "cluster.credentials_file {path}: {source}; check the path and that it is a NATS .creds file"
    )]
    Credentials {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cluster.nats_url: {0}; check the URL and TLS options")]
    Connect(#[from] async_nats::ConnectError),
}

/// What the engine tells the link to listen on.
pub(super) enum Control {
    /// The first subscription on this subject arrived.
    Listen(String),
    /// The last one left.
    Forget(String),
}

/// The connection's state, shared with the event callback.
#[derive(Clone, Default)]
pub(super) struct Status(Arc<StatusInner>);

#[derive(Default)]
struct StatusInner {
    connected: AtomicBool,
    disconnects: AtomicU64,
    dropped: AtomicU64,
    /// Set at the first drop of an outage, so it is logged once.
    dropping: AtomicBool,
}

impl Status {
    fn event(&self, event: &Event) {
        match event {
            Event::Connected => {
                self.0.connected.store(true, Ordering::Relaxed);
                self.0.dropping.store(false, Ordering::Relaxed);
                tracing::info!("cluster: connected to NATS");
            }
            Event::Disconnected => {
                self.0.connected.store(false, Ordering::Relaxed);
                self.0.disconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "cluster: NATS connection lost; serving this host's clients only, reconnecting"
                );
            }
            other => tracing::info!("cluster: NATS {other}"),
        }
    }

    /// Whether the link is up now.
    pub(super) fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed)
    }

    /// `/health`'s `cluster` object.
    pub(super) fn report(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "connected": self.0.connected.load(Ordering::Relaxed),
            "disconnects": self.0.disconnects.load(Ordering::Relaxed),
            "dropped_publications": self.0.dropped.load(Ordering::Relaxed),
        })
    }

    pub(super) fn dropped(&self) {
        self.0.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.0.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "cluster: NATS send queue full; publications are reaching this host's clients only"
            );
        }
    }
}

/// The engine's handle on the two tasks.
pub(super) struct Link {
    /// The connection, for the history stream's tasks.
    pub(super) client: Client,
    publish: mpsc::Sender<(String, Bytes)>,
    control: mpsc::UnboundedSender<Control>,
    status: Status,
}

impl Link {
    pub(super) async fn start(
        config: &ClusterConfig,
        shared: Arc<Shared>,
        status: Status,
    ) -> Result<Self, ClusterError> {
        let events = status.clone();
        let weak = Arc::downgrade(&shared);
        let options = connect_options(config)
            .await?
            // A host delivers its own publications itself.
            .no_echo()
            .event_callback(move |event| {
                events.event(&event);
                // While the link is down this host misses other hosts'
                // publications: nothing recorded before or during the
                // outage may be recovered as complete.
                if matches!(event, Event::Connected | Event::Disconnected)
                    && let Some(shared) = weak.upgrade()
                {
                    shared.local.forget_history();
                }
                async {}
            });
        let client = options.connect(config.nats_url.as_str()).await?;
        let (publish, to_send) = mpsc::channel(SEND_QUEUE);
        let (control, controls) = mpsc::unbounded_channel();
        tokio::spawn(publisher(client.clone(), to_send));
        tokio::spawn(listener(client.clone(), controls, shared));
        Ok(Self {
            client,
            publish,
            control,
            status,
        })
    }

    /// Queues a publication; never waits.
    pub(super) fn publish(&self, subject: String, payload: Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.publish.try_send((subject, payload)) {
            self.status.dropped();
        }
    }

    pub(super) fn control(&self, control: Control) {
        // Closed only when the listener has ended, with the engine.
        let _ = self.control.send(control);
    }
}

/// How every connection of this host to `[cluster]`'s server is made
/// (the fan-out's and the module calls'): its name, credentials, TLS, and
/// retries with backoff, a server down at start included.
pub async fn connect_options(config: &ClusterConfig) -> Result<ConnectOptions, ClusterError> {
    let mut options = ConnectOptions::new()
        .name(&config.name)
        // A server that is down at start is retried: the host serves its
        // own clients meanwhile.
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(backoff)
        .require_tls(config.tls_required);
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some(path) = &config.credentials_file {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| ClusterError::Credentials {
                    path: path.clone(),
                    source,
                })?;
    }
    if let Some(ca) = &config.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    Ok(options)
}

/// 100 ms, doubled per attempt, at most 5 s.
pub(super) fn backoff(attempts: usize) -> Duration {
    let shift = u32::try_from(attempts.min(16)).unwrap_or(16);
    BACKOFF_MIN.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

/// Publishes in the order the engine queued, until the engine is gone.
async fn publisher(client: Client, mut to_send: mpsc::Receiver<(String, Bytes)>) {
    while let Some((subject, payload)) = to_send.recv().await {
        if let Err(e) = client.publish(subject, payload).await {
            tracing::warn!("cluster: a publication was not sent to NATS ({e})");
        }
    }
}

/// Keeps one NATS subscription per subject the engine listens on.
async fn listener(
    client: Client,
    mut controls: mpsc::UnboundedReceiver<Control>,
    shared: Arc<Shared>,
) {
    let mut subscriptions: HashMap<String, JoinHandle<()>> = HashMap::new();
    while let Some(control) = controls.recv().await {
        match control {
            Control::Listen(subject) => {
                let (client, shared, on) = (client.clone(), shared.clone(), subject.clone());
                let task = tokio::spawn(async move {
                    let mut messages = match client.subscribe(on.clone()).await {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!("cluster: could not listen on {on} ({e})");
                            return;
                        }
                    };
                    while let Some(message) = messages.next().await {
                        shared.receive(&message.payload);
                    }
                });
                if let Some(old) = subscriptions.insert(subject, task) {
                    old.abort();
                }
            }
            // Dropping the subscription (with the aborted task) tells the
            // server to stop sending.
            Control::Forget(subject) => {
                if let Some(task) = subscriptions.remove(&subject) {
                    task.abort();
                }
            }
        }
    }
    for task in subscriptions.into_values() {
        task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(6), BACKOFF_MAX);
        assert_eq!(backoff(usize::MAX), BACKOFF_MAX);
    }
}
