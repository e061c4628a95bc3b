//! This host's side of the cluster's module calls: it announces the
//! modules it serves and answers the calls other hosts send them.
//!
//! Served: the in-process modules and the external ones connected on
//! `/module`. Not the built-in `jobs`: jobs run on the machine that
//! launched them (ports, processes, the job registry are per host), every
//! host has its own `jobs`, and a user's jobs on another host are reached
//! through that host.
//!
//! Each served module has a queue subscription on `<prefix>.call.<module>`
//! in the queue group of the same name, so one of the hosts serving it
//! gets each call. The subscriptions follow the modules: they are checked
//! at each announcement and whenever the module registry changes, so a
//! module unloaded here stops being offered within the announcement
//! period. At shutdown the host stops listening and says goodbye.
//!
//! A call arrives with its caller stamped by the calling host and the
//! user's rooms as that host checked them; the broker checks it again
//! against this host's manifest and dispatches it to the local endpoint
//! only ([`Broker::call_from_host`](crate::broker::Broker::call_from_host)),
//! so a call never travels on to a third host.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Weak},
    time::Duration,
};

use async_nats::{Client, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use modhost_plugin_api::ErrorCode;
use serde_json::value::RawValue;
use tokio::{runtime::Handle, sync::mpsc, task::JoinHandle};

use super::{
    directory::{ANNOUNCE_EVERY, MAX_MANIFEST_BYTES, MAX_MODULES},
    remote::Outgoing,
    stats::CallStats,
    wire::{AnnounceOut, AnswerOut, RequestIn, WireManifest},
};
use crate::{
    broker::{CallRequest, EndpointSource},
    external::External,
    modules::{CallFailure, CallSink},
    state::AppState,
};

/// Stream items one call may send back; past it the call ends `too-large`.
pub(super) const MAX_ITEMS: usize = 100_000;

/// What the offering task needs.
pub(super) struct Offer {
    pub client: Client,
    pub state: Weak<AppState>,
    pub external: Arc<External>,
    pub prefix: String,
    pub host: String,
    pub outbox: mpsc::Sender<Outgoing>,
    pub stats: Arc<CallStats>,
}

impl Offer {
    /// Announces and serves until the host shuts down, then says goodbye.
    pub(super) async fn run(self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let mut shutdown = state.shutdown.clone();
        let mut changes = state.registry.subscribe_changes();
        drop(state);
        let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
        let mut serving: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut warned = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = changes.changed() => if changed.is_err() { break },
                _ = shutdown.wait_for(|stopping| *stopping) => break,
            }
            let Some(modules) = self.local_modules(&mut warned) else {
                break;
            };
            self.follow(&mut serving, &modules);
            self.announce(modules.into_values().collect(), false).await;
        }
        for task in serving.into_values() {
            task.abort();
        }
        self.announce(Vec::new(), true).await;
        // The goodbye must leave before the connection closes.
        let _ = self.client.flush().await;
    }

    /// This host's modules and their manifests as announced, by name.
    fn local_modules(&self, warned: &mut bool) -> Option<BTreeMap<String, WireManifest>> {
        let state = self.state.upgrade()?;
        let config = state.config.load();
        let timeout = |name: &str| {
            config
                .modules
                .settings_for(name)
                .call_timeout
                .unwrap_or(config.limits.call_timeout)
        };
        let mut modules = BTreeMap::new();
        for g in state.registry.running() {
            let wire = WireManifest::from(&g.manifest)
                .with_timeout(Duration::from_millis(g.call_timeout_ms()));
            modules.insert(g.name.to_string(), wire);
        }
        for (name, _) in self.external.running() {
            // A name an in-process module has is served by it.
            if modules.contains_key(&name) {
                continue;
            }
            if let Some(endpoint) = self.external.resolve(&name) {
                let wire = WireManifest::from(endpoint.manifest()).with_timeout(timeout(&name));
                modules.insert(name, wire);
            }
        }
        let before = modules.len();
        modules.retain(|name, wire| {
            let size = serde_json::to_vec(wire).map_or(usize::MAX, |b| b.len());
            if size > MAX_MANIFEST_BYTES && !*warned {
                tracing::warn!(module = %name, "cluster: the manifest is larger than {MAX_MANIFEST_BYTES} bytes; other hosts cannot call this module");
            }
            size <= MAX_MANIFEST_BYTES
        });
        if modules.len() > MAX_MODULES {
            if !*warned {
                tracing::warn!(
                    "cluster: this host serves {} modules; other hosts can call only the first {MAX_MODULES} (by name)",
                    modules.len()
                );
            }
            while modules.len() > MAX_MODULES {
                modules.pop_last();
            }
        }
        *warned |= before != modules.len();
        Some(modules)
    }

    /// Listens on the subjects of `modules`, and only those.
    fn follow(
        &self,
        serving: &mut HashMap<String, JoinHandle<()>>,
        modules: &BTreeMap<String, WireManifest>,
    ) {
        serving.retain(|name, task| {
            let keep = modules.contains_key(name);
            if !keep {
                // Dropping the subscription with the task unsubscribes.
                task.abort();
            }
            keep
        });
        for name in modules.keys() {
            if serving.contains_key(name) {
                continue;
            }
            let subject = format!("{}.call.{name}", self.prefix);
            let task = tokio::spawn(serve_module(
                self.client.clone(),
                subject,
                name.clone(),
                self.state.clone(),
                Answers {
                    outbox: self.outbox.clone(),
                    runtime: Handle::current(),
                },
                self.stats.clone(),
            ));
            serving.insert(name.clone(), task);
        }
    }

    async fn announce(&self, modules: Vec<WireManifest>, bye: bool) {
        let body = AnnounceOut {
            host: &self.host,
            bye,
            modules,
        };
        let Ok(body) = serde_json::to_vec(&body) else {
            return;
        };
        let subject = format!("{}.dir", self.prefix);
        if let Err(e) = self.client.publish(subject, body.into()).await {
            tracing::debug!("cluster: announcement not sent ({e})");
        }
    }
}

/// Serves one module's calls until the task is aborted.
async fn serve_module(
    client: Client,
    subject: String,
    module: String,
    state: Weak<AppState>,
    answers: Answers,
    stats: Arc<CallStats>,
) {
    let mut calls = match client
        .queue_subscribe(subject.clone(), subject.clone())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%module, "cluster: cannot serve the module to other hosts ({e})");
            return;
        }
    };
    while let Some(message) = calls.next().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        serve(&state, &module, message, &answers, &stats);
    }
}

/// Hands one call to the broker; its answers go to the message's reply
/// subject.
fn serve(state: &AppState, module: &str, message: Message, answers: &Answers, stats: &CallStats) {
    let Some(reply) = message.reply else {
        return;
    };
    let sink = AnswerSink {
        reply: reply.to_string(),
        answers: answers.clone(),
        items: 0,
        max_bytes: state.config.load().limits.max_frame_bytes,
        broken: None,
    };
    let request = match serde_json::from_slice::<RequestIn>(&message.payload) {
        Ok(r) => r,
        Err(e) => {
            let failure = CallFailure::new(
                ErrorCode::ModuleUnavailable,
                format!(
                    "the call did not parse on the serving host ({e}); are both hosts on the same version?"
                ),
            );
            return Box::new(sink).finish(Err(failure));
        }
    };
    // Each subscription serves its own module only: the built-in `jobs`,
    // say, is never reachable by naming it in a request.
    let (Some(caller), Ok(user), true) = (
        request.caller.caller(),
        request.user(),
        request.module == module,
    ) else {
        let failure = CallFailure::new(
            ErrorCode::ModuleUnavailable,
            "the call's caller, rooms or module are not valid on the serving host",
        );
        return Box::new(sink).finish(Err(failure));
    };
    stats.served();
    let req = CallRequest {
        module: &request.module,
        command: &request.command,
        params: Some(request.params.get()),
        caller,
        user,
    };
    state.broker.call_from_host(req, |_| Box::new(sink));
}

/// The queue of answers on their way to the calling hosts.
#[derive(Clone)]
struct Answers {
    outbox: mpsc::Sender<Outgoing>,
    runtime: Handle,
}

impl Answers {
    /// Queues a stream item; false when the queue is full (the call then
    /// ends with an error rather than a stream with a hole).
    fn item(&self, reply: &str, body: Bytes) -> bool {
        self.outbox.try_send((reply.to_owned(), None, body)).is_ok()
    }

    /// Queues the last answer, waiting for room if the queue is full: it
    /// is never dropped (there is one per call, and calls are bounded by
    /// the modules' queues).
    fn last(&self, reply: &str, body: Bytes) {
        if let Err(mpsc::error::TrySendError::Full(out)) =
            self.outbox.try_send((reply.to_owned(), None, body))
        {
            let outbox = self.outbox.clone();
            self.runtime.spawn(async move {
                let _ = outbox.send(out).await;
            });
        }
    }
}

/// Sends a call's answers to the calling host's inbox.
struct AnswerSink {
    reply: String,
    answers: Answers,
    items: usize,
    max_bytes: usize,
    /// Set when an item could not be sent: the rest of the stream is
    /// dropped and the call ends with this.
    broken: Option<CallFailure>,
}

impl AnswerSink {
    fn encode(answer: &AnswerOut<'_>) -> Bytes {
        serde_json::to_vec(answer).map_or_else(|_| Bytes::new(), Bytes::from)
    }

    fn too_large(&self, result: &str) -> Option<CallFailure> {
        (result.len() > self.max_bytes).then(|| {
            CallFailure::new(
                ErrorCode::TooLarge,
                format!(
                    "the module's answer ({} bytes) is larger than max_frame_bytes ({}) and cannot travel between hosts",
                    result.len(),
                    self.max_bytes
                ),
            )
        })
    }
}

impl CallSink for AnswerSink {
    fn item(&mut self, result: &str) {
        if self.broken.is_some() {
            return;
        }
        self.items += 1;
        if self.items > MAX_ITEMS {
            self.broken = Some(CallFailure::new(
                ErrorCode::TooLarge,
                format!(
                    "the stream has more than {MAX_ITEMS} items, more than travel between hosts"
                ),
            ));
            return;
        }
        if let Some(failure) = self.too_large(result) {
            self.broken = Some(failure);
            return;
        }
        let Ok(r) = serde_json::from_str::<&RawValue>(result) else {
            return;
        };
        if !self
            .answers
            .item(&self.reply, Self::encode(&AnswerOut::item(r)))
        {
            self.broken = Some(CallFailure::new(
                ErrorCode::ModuleUnavailable,
                "the serving host could not send the stream's items fast enough; try again",
            ));
        }
    }

    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let outcome = match (&self.broken, outcome) {
            (Some(failure), _) => Err(failure.clone()),
            (None, Ok(result)) => self.too_large(result).map_or(Ok(result), Err),
            (None, Err(failure)) => Err(failure),
        };
        let body = match &outcome {
            Ok(result) => match serde_json::from_str::<&RawValue>(result) {
                Ok(r) => Self::encode(&AnswerOut::ok(r)),
                Err(e) => Self::encode(&AnswerOut::failure(&CallFailure::new(
                    ErrorCode::ModuleError,
                    format!("the module's answer is not JSON ({e})"),
                ))),
            },
            Err(failure) => Self::encode(&AnswerOut::failure(failure)),
        };
        self.answers.last(&self.reply, body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::{AnswerIn, Kind};

    fn sink(capacity: usize, max_bytes: usize) -> (AnswerSink, mpsc::Receiver<Outgoing>) {
        let (outbox, queue) = mpsc::channel(capacity);
        let sink = AnswerSink {
            reply: "p.inbox.a.1".into(),
            answers: Answers {
                outbox,
                runtime: Handle::current(),
            },
            items: 0,
            max_bytes,
            broken: None,
        };
        (sink, queue)
    }

    async fn next(queue: &mut mpsc::Receiver<Outgoing>) -> AnswerIn {
        let (subject, reply, body) = queue.recv().await.unwrap();
        assert_eq!((subject.as_str(), reply), ("p.inbox.a.1", None));
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn an_answer_too_large_to_travel_ends_the_call_too_large() {
        let (mut sink, mut queue) = sink(16, 10);
        sink.item(r#"{"i":1}"#);
        sink.item(r#"{"i":"far too long"}"#);
        sink.item(r#"{"i":3}"#);
        Box::new(sink).finish(Ok("{}"));
        let first = next(&mut queue).await;
        assert_eq!(
            (first.k, first.r.unwrap().get()),
            (Kind::Item, r#"{"i":1}"#)
        );
        let last = next(&mut queue).await;
        assert_eq!(
            (last.k, last.code.as_deref()),
            (Kind::Err, Some("too-large"))
        );
        assert!(queue.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_breaks_the_stream_but_never_loses_the_last_answer() {
        let (mut sink, mut queue) = sink(1, 1000);
        sink.item("1");
        sink.item("2");
        Box::new(sink).finish(Ok("3"));
        let first = next(&mut queue).await;
        assert_eq!((first.k, first.r.unwrap().get()), (Kind::Item, "1"));
        let last = next(&mut queue).await;
        assert_eq!(
            (last.k, last.code.as_deref()),
            (Kind::Err, Some("module-unavailable"))
        );
    }
}
