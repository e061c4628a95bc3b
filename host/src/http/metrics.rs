//! `GET /metrics`: Prometheus text exposition of the host's counters.
//!
//! Values are read from the live state at scrape time into a fresh
//! registry, so nothing on the hot path pays for metrics beyond the
//! counters it already keeps. The one exception is calls: the broker keeps
//! their counts and latency histograms as prometheus-client families
//! (`broker::CallMetrics`), registered here as shared handles.
//!
//! With `[cluster]`, the NATS link and cross-host calls are reported too
//! (`cluster_*`); without it those families are absent.

use std::sync::{Arc, atomic::Ordering};

use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::{ApiError, ConfigStatus, auth::bearer};
use crate::{cluster::Cluster, jobs::Jobs, state::AppState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModuleLabels {
    module: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HowLabels {
    how: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// A counter family with one series per `(label, value)`.
fn counted<L, I>(label: impl Fn(&str) -> L, values: I) -> Family<L, Counter<u64>>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    I: IntoIterator<Item = (&'static str, u64)>,
{
    let family = Family::<L, Counter<u64>>::default();
    for (key, n) in values {
        family.get_or_create(&label(key)).inc_by(n);
    }
    family
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// The current metrics as Prometheus text.
pub(crate) fn render(
    state: &AppState,
    config: &ConfigStatus,
    jobs: &Jobs,
    cluster: Option<&Cluster>,
) -> String {
    let mut r = Registry::with_prefix("modhost");
    register_sessions(&mut r, state);
    register_modules(&mut r, state);
    register_calls(&mut r, state);
    register_reloads(&mut r, state, config);
    register_jobs(&mut r, jobs);
    if let Some(cluster) = cluster {
        register_cluster(&mut r, state, cluster);
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &r);
    text
}

/// Connections, rooms and traffic.
fn register_sessions(r: &mut Registry, state: &AppState) {
    let gauges: [(&str, &str, usize); 5] = [
        (
            "connections_open",
            "Open websocket connections",
            state.sessions.open(),
        ),
        (
            "sessions_parked",
            "Sessions waiting to be resumed",
            state.sessions.parked(),
        ),
        (
            "rooms",
            "Rooms with at least one subscriber",
            state.fanout.num_rooms(),
        ),
        (
            "subscriptions",
            "Room subscriptions",
            state.fanout.num_subscriptions(),
        ),
        (
            "history_bytes",
            "Bytes of room history kept, counted against [history] max_bytes",
            state.fanout.history_bytes(),
        ),
    ];
    for (name, help, value) in gauges {
        gauge(r, name, help, value as u64);
    }
    let c = &state.sessions.counters;
    let counters = [
        (
            "ws_messages_received",
            "Frames received from clients",
            &c.ws_messages_received,
        ),
        (
            "ws_messages_sent",
            "Room messages queued to clients",
            &c.ws_messages_send,
        ),
        (
            "ws_messages_dropped",
            "Room messages not queued: the client had fallen behind or left",
            &c.ws_messages_send_error,
        ),
        (
            "slow_consumers_closed",
            "Clients closed with 4008 for falling behind",
            &c.slow_consumers_closed,
        ),
        (
            "connections_refused",
            "Connections refused at max_connections",
            &c.connections_refused,
        ),
        (
            "publishes",
            "Publishes received (trigger, AMQP and modules)",
            &c.publishes,
        ),
        (
            "amqp_messages_received",
            "Messages received from the [trigger.amqp] exchange",
            &c.amqp_messages_received,
        ),
        (
            "amqp_messages_dropped",
            "AMQP messages dropped: too large or not a trigger message",
            &c.amqp_messages_dropped,
        ),
    ];
    for (name, help, value) in counters {
        counter(r, name, help, value.load(Ordering::Relaxed));
    }
}

/// Modules by state, and per module: restarts, timeouts, builds, calls.
fn register_modules(r: &mut Registry, state: &AppState) {
    let rows = state.registry.list();
    let by_state = Family::<StateLabels, Gauge<i64>>::default();
    let restarts = Family::<ModuleLabels, Counter<u64>>::default();
    let timeouts = Family::<ModuleLabels, Counter<u64>>::default();
    let generations = Family::<ModuleLabels, Gauge<i64>>::default();
    for row in &rows {
        by_state
            .get_or_create(&StateLabels {
                state: row.state.clone(),
            })
            .inc();
        if row.state != "refused" {
            let labels = ModuleLabels {
                module: row.name.clone(),
            };
            restarts.get_or_create(&labels).inc_by(row.restarts);
            timeouts.get_or_create(&labels).inc_by(row.timeouts);
            generations
                .get_or_create(&labels)
                .set(i64::try_from(row.generations).unwrap_or(i64::MAX));
        }
    }
    let in_flight = Family::<ModuleLabels, Gauge<i64>>::default();
    for generation in state.registry.running() {
        in_flight
            .get_or_create(&ModuleLabels {
                module: generation.name.clone(),
            })
            .set(generation.in_flight() as i64);
    }
    r.register("modules", "Modules (and refused builds) by state", by_state);
    r.register(
        "module_restarts",
        "Instance restarts after a panic, current build",
        restarts,
    );
    r.register(
        "module_timeouts",
        "Calls answered with module-timeout, current build",
        timeouts,
    );
    r.register(
        "module_generations",
        "Builds of the module loaded (each stays mapped)",
        generations,
    );
    r.register(
        "module_calls_in_flight",
        "Calls accepted and not yet answered",
        in_flight,
    );
}

/// Calls by module, command and code, and their latency (kept by the broker).
fn register_calls(r: &mut Registry, state: &AppState) {
    let metrics = state.broker.metrics();
    r.register(
        "calls",
        "Calls answered, by module, command and code (ok or the error code)",
        metrics.calls.clone(),
    );
    r.register(
        "call_duration_seconds",
        "Seconds from the broker taking a call to its final answer",
        metrics.latency.clone(),
    );
}

/// Module builds started and refused, and config.toml reloads.
fn register_reloads(r: &mut Registry, state: &AppState, config: &ConfigStatus) {
    r.register(
        "module_starts",
        "Module generations started: load (first), swap (new build) or reset (operator)",
        counted(
            |how| HowLabels {
                how: how.to_owned(),
            },
            state.registry.starts(),
        ),
    );
    r.register(
        "module_refusals",
        "Module builds refused, by reason",
        counted(
            |reason| ReasonLabels {
                reason: reason.to_owned(),
            },
            state.registry.refusals(),
        ),
    );
    let status = crate::util::sync::lock(config).clone();
    counter(
        r,
        "config_reloads",
        "Versions of config.toml applied since start",
        status.applied,
    );
    gauge(
        r,
        "config_reload_failed",
        "1 while the newest config.toml on disk could not be applied (GET /api/config says why)",
        u64::from(status.last_error.is_some()),
    );
}

/// Jobs by status.
fn register_jobs(r: &mut Registry, jobs: &Jobs) {
    let by_status = Family::<StateLabels, Gauge<i64>>::default();
    for (status, n) in jobs.count_by_status() {
        by_status
            .get_or_create(&StateLabels {
                state: status.to_owned(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.register("jobs", "Jobs the host knows, by status", by_status);
}

/// The NATS link (as `/health` reports it) and calls across hosts.
fn register_cluster(r: &mut Registry, state: &AppState, cluster: &Cluster) {
    let link = state.fanout.cluster().unwrap_or_default();
    let read = |key: &str| match &link[key] {
        serde_json::Value::Bool(b) => u64::from(*b),
        v => v.as_u64().unwrap_or(0),
    };
    let calls = cluster.report();
    gauge(
        r,
        "cluster_connected",
        "1 while the fan-out's NATS connection is up",
        read("connected"),
    );
    gauge(
        r,
        "cluster_calls_connected",
        "1 while the module calls' NATS connection is up",
        u64::from(calls.connected),
    );
    counter(
        r,
        "cluster_disconnects",
        "Times the fan-out's NATS connection was lost",
        read("disconnects"),
    );
    counter(
        r,
        "cluster_dropped_publications",
        "Publications not sent to other hosts: the NATS send queue was full",
        read("dropped_publications"),
    );
    r.register(
        "cluster_remote_calls",
        "Module calls this host sent to other hosts, and served for them",
        counted(
            |d| DirectionLabels {
                direction: d.to_owned(),
            },
            [("sent", calls.sent), ("served", calls.served)],
        ),
    );
    counter(
        r,
        "cluster_remote_call_failures",
        "Calls sent to other hosts that this host answered itself: timed out, link lost, host gone, too many in flight",
        calls.failed,
    );
    gauge(
        r,
        "cluster_remote_calls_in_flight",
        "Calls sent to other hosts and not answered yet",
        cluster.in_flight() as u64,
    );
    gauge(
        r,
        "cluster_hosts",
        "Other hosts announcing their modules",
        calls.hosts as u64,
    );
    gauge(
        r,
        "cluster_remote_modules",
        "Modules served by other hosts (once per host)",
        calls.remote_modules as u64,
    );
    r.register(
        "cluster_hosts_left",
        "Other hosts that left the directory: with a goodbye (a clean stop) or silent (killed, cut off)",
        counted(
            |reason| ReasonLabels {
                reason: reason.to_owned(),
            },
            [
                ("goodbye", calls.hosts_left_goodbye),
                ("silent", calls.hosts_left_silent),
            ],
        ),
    );
}

/// `GET /metrics`, with `Authorization: Bearer <[metrics] token>` when
/// one is set.
pub(super) async fn metrics(
    State(state): State<Arc<AppState>>,
    Extension(config): Extension<ConfigStatus>,
    Extension(jobs): Extension<Arc<Jobs>>,
    Extension(cluster): Extension<Option<Arc<Cluster>>>,
    headers: HeaderMap,
) -> Response {
    if !state.api_tokens.load().may_scrape(bearer(&headers)) {
        return ApiError::unauthorized(
            "missing or wrong metrics token (Authorization: Bearer <[metrics] token>)",
        )
        .into_response();
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&state, &config, &jobs, cluster.as_deref()),
    )
        .into_response()
}
