//! Counters of cross-host calls, for `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Kept by the remote endpoints and the serving side; read at scrape time.
#[derive(Default)]
pub(super) struct CallStats {
    sent: AtomicU64,
    served: AtomicU64,
    failed: AtomicU64,
    connected: AtomicBool,
}

/// A snapshot of [`CallStats`] and the directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallReport {
    /// Calls this host sent to another host.
    pub sent: u64,
    /// Calls this host served for another host.
    pub served: u64,
    /// Calls sent that this host answered itself because no other host
    /// did: timed out, link lost, no host left, too many in flight.
    pub failed: u64,
    /// The calls connection is up.
    pub connected: bool,
    /// Other hosts announcing modules now.
    pub hosts: usize,
    /// Modules on other hosts (counted once per host serving them).
    pub remote_modules: usize,
    /// Hosts that left the directory with a goodbye (a clean stop).
    pub hosts_left_goodbye: u64,
    /// Hosts that left by falling silent (killed, cut off from NATS).
    pub hosts_left_silent: u64,
}

impl CallStats {
    pub(super) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// `departures`: hosts that left (with a goodbye, by falling silent).
    pub(super) fn report(
        &self,
        hosts: usize,
        remote_modules: usize,
        departures: (u64, u64),
    ) -> CallReport {
        CallReport {
            hosts_left_goodbye: departures.0,
            hosts_left_silent: departures.1,
            sent: self.sent.load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            connected: self.is_connected(),
            hosts,
            remote_modules,
        }
    }
}
