//! Open websocket sessions: for pushing to a user's sessions, the admin
//! connection list and high-templar's status counters.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Mutex, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;

use serde_json::value::RawValue;

use crate::{
    protocol::Dialect,
    util::sync::{lock, read, write},
};

use super::{outbox::Outbox, parked::ParkedSessions};

/// The client-visible name of session `id`.
pub fn session_name(id: u64) -> String {
    format!("s{id:x}")
}

/// The session number of a [`session_name`], or `None` for anything else.
pub fn session_id(name: &str) -> Option<u64> {
    let hex = name.strip_prefix('s')?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Counters reported by `{"type":"status"}` and `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Frames received from clients.
    pub ws_messages_received: AtomicU64,
    /// Frames queued to clients.
    pub ws_messages_send: AtomicU64,
    /// Frames not queued because the client had fallen behind or left.
    pub ws_messages_send_error: AtomicU64,
    /// Clients closed with 4008 for falling behind.
    pub slow_consumers_closed: AtomicU64,
    /// Connections refused because the limit was reached.
    pub connections_refused: AtomicU64,
    /// Publishes received (trigger, AMQP, modules).
    pub publishes: AtomicU64,
    /// Messages received from the AMQP source, published or not
    /// (high-templar's `rabbitmq_messages_received`).
    pub amqp_messages_received: AtomicU64,
    /// AMQP messages dropped (and acknowledged) as too large or not a
    /// trigger message.
    pub amqp_messages_dropped: AtomicU64,
}

struct Entry {
    user: String,
    outbox: Outbox,
    dialect: &'static dyn Dialect,
    remote: Option<SocketAddr>,
    connected_at: SystemTime,
}

/// A row of `GET /api/connections`.
#[derive(Debug, Serialize)]
pub struct ConnectionInfo {
    /// Session id.
    pub session: String,
    /// User id.
    pub user: String,
    /// The dialect it speaks (`modhost.v1` or `high-templar`).
    pub protocol: &'static str,
    /// `open`, or `parked` (the client dropped; it may resume).
    pub state: &'static str,
    /// Peer address.
    pub remote: Option<String>,
    /// Unix seconds.
    pub connected_at: u64,
}

/// The table of open sessions.
#[derive(Default)]
pub struct Sessions {
    by_id: RwLock<HashMap<u64, Entry>>,
    by_user: RwLock<HashMap<String, Vec<u64>>>,
    open: AtomicUsize,
    next_id: AtomicU64,
    /// Traffic counters.
    pub counters: Counters,
    /// Sessions whose client dropped, by resume token.
    pub parked: ParkedSessions,
    /// The last sum of queued messages and when it was taken.
    queued: Mutex<Option<(Instant, u64)>>,
}

/// How long a sum of queued messages is reused: any client may ask for
/// `status`, and summing walks every session.
const QUEUED_REUSE: Duration = Duration::from_secs(1);

impl Sessions {
    /// A new, unique session number.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Reserves a connection slot; `false` if `max` are already open.
    pub fn try_reserve(&self, max: usize) -> bool {
        let reserved = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            self.counters
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        reserved
    }

    /// Gives a reserved slot back.
    pub fn release(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Open connections (including ones still authenticating).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Registers an authenticated session.
    pub fn insert(
        &self,
        id: u64,
        user: &str,
        outbox: Outbox,
        dialect: &'static dyn Dialect,
        remote: Option<SocketAddr>,
    ) {
        write(&self.by_id).insert(
            id,
            Entry {
                user: user.to_owned(),
                outbox,
                dialect,
                remote,
                connected_at: SystemTime::now(),
            },
        );
        write(&self.by_user)
            .entry(user.to_owned())
            .or_default()
            .push(id);
    }

    /// Forgets a session.
    pub fn remove(&self, id: u64) {
        let entry = write(&self.by_id).remove(&id);
        if let Some(entry) = entry {
            let mut by_user = write(&self.by_user);
            if let Some(ids) = by_user.get_mut(&entry.user) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    by_user.remove(&entry.user);
                }
            }
        }
    }

    /// Queues `module`'s `data` to every session of `user` whose dialect
    /// takes pushes; returns how many took it.
    pub fn send_to_user(&self, user: &str, module: &str, data: &RawValue) -> u64 {
        let ids = match read(&self.by_user).get(user) {
            Some(ids) => ids.clone(),
            None => return 0,
        };
        let by_id = read(&self.by_id);
        ids.iter()
            .filter_map(|id| by_id.get(id))
            .filter_map(|e| Some((e, e.dialect.push(module, data)?)))
            .filter(|(e, frame)| e.outbox.text(frame.clone()))
            .count() as u64
    }

    /// Asks every session of `user` (open or parked) to check its
    /// credential again; returns how many were asked. Found by the user
    /// index: the cost is that user's sessions, not every session.
    pub fn recheck_user(&self, user: &str) -> usize {
        let ids = match read(&self.by_user).get(user) {
            Some(ids) => ids.clone(),
            None => return 0,
        };
        let by_id = read(&self.by_id);
        ids.iter()
            .filter_map(|id| by_id.get(id))
            .inspect(|e| e.outbox.state().request_recheck())
            .count()
    }

    /// Room messages queued in every session's outbox, not yet written.
    /// Summed at most once per [`QUEUED_REUSE`].
    pub fn queued(&self) -> u64 {
        let mut last = lock(&self.queued);
        if let Some((at, sum)) = *last
            && at.elapsed() < QUEUED_REUSE
        {
            return sum;
        }
        let sum = read(&self.by_id)
            .values()
            .map(|e| e.outbox.state().unsent() as u64)
            .sum();
        *last = Some((Instant::now(), sum));
        sum
    }

    /// Sessions waiting to be resumed.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Asks open session `id` to close (an operator's disconnect; it
    /// closes with 4003 `disconnected by an operator`). Returns its user,
    /// or `None` when there is no such session. A parked session has no
    /// client to close: the caller forgets it (`parked.expire`).
    pub fn disconnect(&self, id: u64) -> Option<String> {
        let by_id = read(&self.by_id);
        let entry = by_id.get(&id)?;
        entry.outbox.state().request_disconnect();
        Some(entry.user.clone())
    }

    /// Rows for the admin API.
    pub fn list(&self) -> Vec<ConnectionInfo> {
        let parked = self.parked.ids();
        let by_id = read(&self.by_id);
        let mut rows: Vec<ConnectionInfo> = by_id
            .iter()
            .map(|(id, e)| ConnectionInfo {
                session: session_name(*id),
                user: e.user.clone(),
                protocol: e.dialect.name(),
                state: if parked.contains(id) {
                    "parked"
                } else {
                    "open"
                },
                remote: e.remote.map(|a| a.to_string()),
                connected_at: e
                    .connected_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            })
            .collect();
        rows.sort_by(|a, b| a.session.cmp(&b.session));
        rows
    }
}
