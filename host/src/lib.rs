//! modhost: loads signed modules through a stable ABI and connects them to
//! users over websockets.
//!
//! # Layout
//! - `config`: config.toml → validated `Config` (paths resolved, limits defaulted)
//! - `signing`: `.sig` envelopes, verify keys, ed25519 signing and verification, rollback guard
//! - `modules`: loader (verify → sealed copy → dlopen), actors, registry
//! - `auth`: who a websocket client is (static tokens, bootstrap URL, JWT)
//! - `accounts`: users the host keeps (SQLite in `state_dir`): passwords,
//!   login sessions, refresh tokens, access tokens it signs, audit log
//! - `protocol`: client frames in and out, error codes, dialects (serde, no I/O)
//! - `sessions`: each session's outbox and calls; open and parked sessions
//! - `rooms`: room objects, permission and match rules, the subscription index
//! - `fanout`: engines that decide who gets a publish (in memory, or across
//!   hosts over NATS with `[cluster]`), and per-room history for clients
//!   that come back (offsets, epochs)
//! - `broker`: checks calls against manifests, stamps callers, dispatches them to
//!   module endpoints (in-process generations, external modules, the
//!   built-in `jobs`, modules on other hosts)
//! - `state`: the shared state and the services modules call back into
//! - `trigger`: publishes from backends: the `{"rooms","data"}` message
//!   (shared with `POST /trigger/`) and the AMQP source (`[trigger.amqp]`)
//! - `cmd`: one file per client command, applied to a session
//! - `gateway`: the websocket endpoint and the per-connection session loop
//! - `external`: modules in any language on `GET /module` (signed frames,
//!   sse-platform's requests), served to the broker as endpoints
//! - `cluster`: module calls across hosts over NATS (`[cluster]`): the
//!   directory of other hosts' modules, calls to them, serving this host's
//! - `http`: health, trigger, admin API, the admin page (`/admin/`)
//! - `jobs`: the job launcher: `[apps.<name>]` started for users as jobs
//!   (ports, certificates, process groups, a SQLite registry), served to
//!   the broker as the built-in module `jobs`
//! - `server`: builds the shared state, loads modules and serves until
//!   shutdown; turns account store changes into revocations and module events
//! - `util`: shared helpers: folder watcher thread, atomic file write,
//!   constant-time comparison, poison-tolerant locks, the TLS of outgoing
//!   https (its [`http_client`] builder is what the CLI's clients start from)

pub mod accounts;
pub mod auth;
pub mod broker;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod external;
pub mod fanout;
pub mod gateway;
pub mod http;
pub mod jobs;
pub mod modules;
pub mod protocol;
pub mod rooms;
pub mod server;
pub mod sessions;
pub mod signing;
pub mod state;
pub mod trigger;
pub(crate) mod util;

pub use util::tls::{TlsSetupError, http_client};
