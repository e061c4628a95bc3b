//! modhost: loads signed modules through a stable ABI and connects them to
//! users over websockets.
//!
//! # Layout
//! - `config`: config.toml → validated `Config` (paths resolved, limits defaulted)
//! - `signing`: `.sig` envelopes, verify keys, ed25519 signing and verification, rollback guard
//! - `modules`: loader (verify → sealed copy → dlopen), actors, registry
//! - `auth`: who a websocket client is (static tokens, bootstrap URL, JWT)
//! - `protocol`: client frames in and out (serde, no I/O)
//! - `rooms`: room objects, permission and match rules, the subscription index
//! - `broker`: validates calls against manifests, routes them to module actors
//! - `gateway`: the websocket endpoint and the per-connection session loop
//! - `http`: health, trigger, admin API
//! - `state`: the shared state and the services modules call back into
//! - `server`: builds the shared state, loads modules and serves until shutdown
//! - `util`: shared helpers: folder watcher thread, atomic file write,
//!   constant-time comparison, poison-tolerant locks

pub mod auth;
pub mod broker;
pub mod config;
pub mod gateway;
pub mod http;
pub mod modules;
pub mod protocol;
pub mod rooms;
pub mod server;
pub mod signing;
pub mod state;
pub(crate) mod util;
