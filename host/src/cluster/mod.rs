//! Module calls across hosts (`[cluster]`): a module loaded only on
//! another host is called from here as if it were local, through NATS
//! request/reply.
//!
//! The broker asks this host's own sources first (the built-in `jobs`,
//! in-process and external modules) and the directory of other hosts'
//! modules last, so a module served here is always called here and
//! `unknown-module` means no host has it. A call to another host is
//! checked here against the manifest that host announced, exactly as a
//! local call (command, params, role), sent with its stamped caller, and
//! checked again there.
//!
//! Hosts trust one another through the NATS credentials: any client
//! that may publish on the cluster's subjects can call any module as any
//! user, so the credentials are given to modhost hosts only (README
//! "Cluster").
//!
//! The calls use a NATS connection of their own (named `<name> calls`),
//! made with the fan-out's options: while it is down, calls to other
//! hosts are refused `module-unavailable` and the ones waiting are
//! answered so.
//!
//! # Layout
//! - `wire`: requests, answers and announcements as JSON
//! - `directory`: other hosts' modules from their announcements, expiry,
//!   the broker's last endpoint source
//! - `remote`: the endpoint of a module on another host and the table of
//!   calls waiting for answers (timeouts, lost link, bounds)
//! - `serve`: this host's announcements and the calls it serves
//! - `stats`: counters for `/metrics`
//! - this file: the connection and the tasks that tie them together

mod directory;
mod remote;
mod serve;
mod stats;
mod wire;

use std::{
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use async_nats::{Client, Event, StatusCode};
use futures_util::StreamExt;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    broker::EndpointSource,
    config::ClusterConfig,
    external::External,
    fanout::{ClusterError, connect_options},
    state::AppState,
    util::sync::lock,
};

use directory::Directory;
use remote::{Outgoing, RemoteCalls};
use serve::Offer;
pub use stats::CallReport;
use stats::CallStats;

/// How often waiting calls and silent hosts are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// This host's part in cross-host module calls.
pub struct Cluster {
    client: Client,
    prefix: String,
    host: String,
    directory: Arc<Directory>,
    calls: Arc<RemoteCalls>,
    stats: Arc<CallStats>,
    /// Taken by [`Cluster::attach`], which starts the publisher.
    to_send: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// The task that announces and serves this host's modules; it ends
    /// with a goodbye at shutdown.
    offer: Mutex<Option<JoinHandle<()>>>,
    /// The publisher, the inbox and the announcements' listener: they run
    /// until [`Cluster::close`].
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Cluster {
    /// Connects to `[cluster]`'s server (in the background if it is down:
    /// calls to other hosts are refused until it is up). `max_frame_bytes`
    /// bounds the answers taken from other hosts.
    pub async fn connect(
        config: &ClusterConfig,
        max_frame_bytes: usize,
    ) -> Result<Arc<Self>, ClusterError> {
        let stats = Arc::new(CallStats::default());
        let (calls, to_send) = RemoteCalls::new(
            &config.subject_prefix,
            &config.name,
            max_frame_bytes,
            stats.clone(),
        );
        let events = (stats.clone(), Arc::downgrade(&calls));
        let client = connect_options(config)
            .await?
            .name(format!("{} calls", config.name))
            .event_callback(move |event| {
                link_event(&events.0, &events.1, &event);
                async {}
            })
            .connect(config.nats_url.as_str())
            .await?;
        Ok(Arc::new(Self {
            client,
            prefix: config.subject_prefix.clone(),
            host: config.name.clone(),
            directory: Arc::new(Directory::new(&config.name, calls.clone())),
            calls,
            stats,
            to_send: Mutex::new(Some(to_send)),
            offer: Mutex::default(),
            tasks: Mutex::default(),
        }))
    }

    /// Other hosts' modules, for the broker to ask after its own sources.
    pub fn source(&self) -> Arc<dyn EndpointSource> {
        self.directory.clone()
    }

    /// Starts serving this host's modules to the cluster and taking
    /// answers and announcements from it, until the host shuts down.
    pub fn attach(&self, state: &Arc<AppState>, external: Arc<External>) {
        let Some(to_send) = lock(&self.to_send).take() else {
            return;
        };
        *lock(&self.tasks) = vec![
            tokio::spawn(publisher(self.client.clone(), to_send)),
            tokio::spawn(inbox(self.client.clone(), self.calls.clone())),
            tokio::spawn(directory(
                self.client.clone(),
                format!("{}.dir", self.prefix),
                self.directory.clone(),
            )),
        ];
        tokio::spawn(sweep(
            Arc::downgrade(state),
            self.calls.clone(),
            self.directory.clone(),
        ));
        let offer = Offer {
            client: self.client.clone(),
            state: Arc::downgrade(state),
            external,
            prefix: self.prefix.clone(),
            host: self.host.clone(),
            outbox: self.calls.outbox(),
            stats: self.stats.clone(),
        };
        *lock(&self.offer) = Some(tokio::spawn(offer.run()));
    }

    /// Waits (at most `wait`) for the goodbye that tells other hosts this
    /// one's modules are gone; the shutdown signal starts it.
    pub async fn stopped(&self, wait: Duration) {
        let task = lock(&self.offer).take();
        if let Some(task) = task
            && tokio::time::timeout(wait, task).await.is_err()
        {
            tracing::warn!(
                "cluster: the goodbye to other hosts was not sent in time; they forget this host's modules within seconds"
            );
        }
    }

    /// Stops the remaining tasks, once this host's modules have stopped
    /// (their last answers to other hosts are sent by then): the calls
    /// connection closes with them.
    pub fn close(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        self.calls
            .fail_all("this host is shutting down while the call was on another host");
    }

    /// Counters and the directory's size, for `/metrics`.
    pub fn report(&self) -> CallReport {
        let (hosts, modules) = self.directory.size();
        self.stats
            .report(hosts, modules, self.directory.departures())
    }

    /// Calls waiting on other hosts now.
    pub fn in_flight(&self) -> usize {
        self.calls.in_flight()
    }
}

/// The calls connection came or went: calls waiting on other hosts cannot
/// be answered over a lost link.
fn link_event(stats: &CallStats, calls: &Weak<RemoteCalls>, event: &Event) {
    match event {
        Event::Connected => stats.set_connected(true),
        Event::Disconnected => {
            stats.set_connected(false);
            if let Some(calls) = calls.upgrade() {
                calls.fail_all("the cluster link was lost while the call was on another host");
            }
        }
        _ => {}
    }
}

/// Publishes requests and answers in the order they were queued.
async fn publisher(client: Client, mut to_send: mpsc::Receiver<Outgoing>) {
    while let Some((subject, reply, body)) = to_send.recv().await {
        let sent = match reply {
            Some(reply) => client.publish_with_reply(subject, reply, body).await,
            None => client.publish(subject, body).await,
        };
        if let Err(e) = sent {
            tracing::warn!("cluster: a call message was not sent to NATS ({e})");
        }
    }
}

/// Takes the answers to this host's calls: one subscription for all.
async fn inbox(client: Client, calls: Arc<RemoteCalls>) {
    let subject = calls.inbox_subject();
    let mut answers = match client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "cluster: cannot take answers from other hosts ({e}); calls to them will time out"
            );
            return;
        }
    };
    while let Some(message) = answers.next().await {
        let id = message.subject.rsplit('.').next().unwrap_or_default();
        let no_responders = message.status == Some(StatusCode::NO_RESPONDERS);
        calls.answer(id, &message.payload, no_responders);
    }
}

/// Takes other hosts' announcements.
async fn directory(client: Client, subject: String, directory: Arc<Directory>) {
    let mut announcements = match client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "cluster: cannot hear other hosts' announcements ({e}); their modules cannot be called"
            );
            return;
        }
    };
    while let Some(message) = announcements.next().await {
        directory.receive(&message.payload, Instant::now());
    }
}

/// Times out waiting calls, forgets silent hosts, and follows the answer
/// size limit across config reloads, until the host is gone.
async fn sweep(state: Weak<AppState>, calls: Arc<RemoteCalls>, directory: Arc<Directory>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        calls.set_max_answer(state.config.load().limits.max_frame_bytes);
        drop(state);
        let now = Instant::now();
        calls.expire(now);
        directory.expire(now);
    }
}
