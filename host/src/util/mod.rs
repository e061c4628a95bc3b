//! Small helpers that several parts of the host need, kept in one place so
//! that each is written (and reasoned about) once.
//!
//! # Layout
//! - `budget`: [`budget::Window`], "at most N per second", and how many were over
//! - `watch`: [`watch::FileWatcher`], a folder watched on its own thread,
//!   events debounced and handed over in batches (module and config watchers)
//! - `fs`: [`fs::open_regular`], never blocked by a FIFO; [`fs::write_atomically`],
//!   temp file → fsync → rename → fsync folder
//! - `secret`: [`secret::ct_eq`], comparing secrets in constant time
//! - `tls`: [`tls::client_config`], rustls with ring, the compiled-in roots
//!   and an optional extra CA file, for outgoing https
//! - `sync`: [`sync::lock`], [`sync::read`], [`sync::write`], lock guards
//!   that recover a poisoned lock, and why that is right here

pub(crate) mod budget;
pub(crate) mod fs;
pub(crate) mod secret;
pub(crate) mod sync;
pub(crate) mod tls;
pub(crate) mod watch;
