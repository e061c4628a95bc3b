//! Port reservation: a job gets a port no other job holds and that nothing
//! on the machine is bound to when it is reserved.
//!
//! The seed picked a random port and checked it only against its own
//! registry, so it handed out ports other programs were using. Here a port
//! is free only if this host can bind it, on the wildcard and on loopback
//! (a program bound to 127.0.0.1 alone does not stop a wildcard bind on
//! every system). The listener is dropped at once so the app can bind it;
//! until the job ends the port stays held here, so no other launch gets
//! it even before the app has bound it.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, TcpListener},
    sync::Mutex,
};

use crate::util::sync::lock;

/// The ports held by this host's jobs.
#[derive(Debug, Default)]
pub(super) struct Ports {
    held: Mutex<HashSet<u16>>,
}

impl Ports {
    /// A port of `first..=last` that no job holds and nothing is bound to,
    /// now held; `None` when there is none. Starts at a random place in the
    /// range so two hosts sharing a range rarely try the same ports.
    pub(super) fn reserve(&self, first: u16, last: u16) -> Option<u16> {
        let mut held = lock(&self.held);
        let span = u32::from(last - first) + 1;
        let mut seed = [0u8; 4];
        let start = match getrandom::fill(&mut seed) {
            Ok(()) => u32::from_le_bytes(seed) % span,
            Err(_) => 0,
        };
        (0..span)
            .map(|i| first + ((start + i) % span) as u16)
            .find(|port| !held.contains(port) && bindable(*port))
            .inspect(|port| {
                held.insert(*port);
            })
    }

    /// Holds `port` for a job found running at start (re-adopted).
    pub(super) fn hold(&self, port: u16) {
        lock(&self.held).insert(port);
    }

    /// Releases `port`: its job has ended.
    pub(super) fn release(&self, port: u16) {
        lock(&self.held).remove(&port);
    }
}

/// Whether nothing is bound to `port` on the wildcard or loopback address.
fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
        && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_and_a_held_port_are_skipped() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let ports = Ports::default();
        assert_eq!(
            ports.reserve(port, port),
            None,
            "a port in use is never given"
        );
        drop(taken);
        assert_eq!(ports.reserve(port, port), Some(port));
        assert_eq!(
            ports.reserve(port, port),
            None,
            "a held port is never given twice"
        );
        ports.release(port);
        assert_eq!(ports.reserve(port, port), Some(port));
    }
}
