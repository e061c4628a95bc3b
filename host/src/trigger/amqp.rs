//! The AMQP source's supervisor: runs a consumer (`consumer.rs`) for the
//! current `[trigger.amqp]`, replaces it when a reload changes that table,
//! and stops it when the host shuts down.
//!
//! A changed table restarts the source instead of asking for a restart of
//! the host: everything the source builds from it (the connection, the
//! queue and its binding) is rebuilt on every reconnect anyway, so a
//! restart of the source is just an early reconnect with the new values.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::{config::AmqpConfig, state::AppState};

use super::consumer;

/// Longest wait for a consumer to close its connection when it is stopped;
/// it is aborted after that (the broker drops its queue with the
/// connection either way).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The running supervisor; it ends by itself when the host shuts down.
pub struct AmqpSource(JoinHandle<()>);

impl AmqpSource {
    /// Starts the supervisor. Without a `[trigger.amqp]` table it only
    /// waits for one to appear on reload.
    pub fn spawn(state: Arc<AppState>) -> AmqpSource {
        AmqpSource(tokio::spawn(supervise(state)))
    }

    /// Waits until it has stopped (after the host's shutdown signal),
    /// at most `wait`.
    pub async fn stopped(self, wait: Duration) {
        let mut task = self.0;
        if tokio::time::timeout(wait, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// A consumer task and the switch that stops it.
struct Running {
    config: AmqpConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(state: &Arc<AppState>, config: AmqpConfig) -> Running {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(consumer::run(state.clone(), config.clone(), stopped));
        Running { config, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn supervise(state: Arc<AppState>) {
    let mut shutdown = state.shutdown.clone();
    let mut applied = state.config_applied.subscribe();
    let mut running: Option<Running> = None;
    loop {
        let wanted = state.config.load().trigger.amqp.clone();
        if running.as_ref().map(|r| &r.config) != wanted.as_ref() {
            if let Some(old) = running.take() {
                match &wanted {
                    Some(_) => tracing::info!(
                        "AMQP source: [trigger.amqp] changed; reconnecting with the new settings"
                    ),
                    None => tracing::info!(
                        "AMQP source: [trigger.amqp] removed; disconnecting from {}",
                        old.config.url
                    ),
                }
                old.stop().await;
            }
            running = wanted.map(|config| Running::start(&state, config));
        }
        tokio::select! {
            // Either way (shutdown, or the host dropped its sender) we stop.
            _ = shutdown.wait_for(|down| *down) => break,
            changed = applied.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(running) = running {
        running.stop().await;
    }
}
