//! Integration tests: a real host on 127.0.0.1, real signed modules, real
//! websocket and HTTP clients.
//!
//! # Layout
//! - `harness`: builds and signs the plugins, starts hosts, clients
//! - `modules`: signed loading and every refusal; panics; the CLI
//! - `gateway`: websocket protocol, auth modes, rooms and fan-out, limits
//! - `legacy`: high-templar 3.1's dialect, frame by frame
//! - `bootstrap`: `[auth.bootstrap]` replies through the real binary
//! - `calls`: the command broker over websockets
//! - `reload`: hot reload of modules and config.toml; fault containment
//! - `hostile`: hostile clients and modules: errors, closes, bounded memory
//! - `security_files`: world-writable config.toml, key folders others can
//!   change, API tokens rotated in config.toml
//! - `security_sessions`: what a session may hold, whose session or state a
//!   client can reach, and sessions whose credentials end (issue 12)
//! - `security_http`: the HTTP layer against hostile clients: bodies before
//!   tokens, half-sent requests, cross-site websockets, demo secrets
//! - `durability`: state on disk survives `kill -9` at any moment
//! - `rabbit`: a throw-away RabbitMQ node, shared by the AMQP tests
//! - `amqp`: the `[trigger.amqp]` source against it
//! - `security_modules`: modules act within the rights of the user they
//!   call for (roles through other modules, rooms, pushes)
//! - `security_fanout`: one publish naming many rooms neither stalls other
//!   clients nor grows the host
//! - `inline_calls`: commands declared non-blocking run on the caller's
//!   thread; a module built without that entry point still loads
//! - `external_client`: a module client sending sse-platform's exact bytes
//! - `external_protocol`: `/module`: sse-platform's client, signed frames,
//!   replays, its requests, every refusal (issue 14 items 1 to 3)
//! - `external_calls`: external modules as broker endpoints: calls, streams,
//!   publishes, module-to-module, disconnects, grace, load (issue 14 item 4)
//! - `external_python`: `examples/python-module` against a real host
//! - `accounts_http`: `/auth/login|refresh|logout`, rate limits, access
//!   tokens and `[[auth.roles]]` rooms on `/ws/` (issue 15 items 3 and 4)
//! - `accounts_cli`: `modhost user …` and `run --create-admin`; passwords
//!   never in argv, `ps` or the log (issue 15 item 2)
//! - `oidc`: `[auth.oidc]` against `oidc_issuer`, a local OpenID Connect
//!   issuer: tokens, key rotation, refusals, an issuer down, huge or slow
//! - `history_recovery`: room history: reconnects get exactly what they
//!   missed or `complete:false`, wildcards, high-templar unchanged, the
//!   admin view (issue 18)
//! - `history_restart`: history across restarts (new epoch, or kept with
//!   `persist`) and within `max_bytes` with many rooms (issue 18)

// Items shared between test files are `pub`; a test binary exports nothing.
#![allow(unreachable_pub)]

mod harness;
mod rabbit;

mod accounts_cli;
mod accounts_http;
mod amqp;
mod bootstrap;
mod calls;
mod durability;
mod external_calls;
mod external_client;
mod external_protocol;
mod external_python;
mod gateway;
mod history_recovery;
mod history_restart;
mod hostile;
mod inline_calls;
mod legacy;
mod modules;
mod oidc;
mod oidc_issuer;
mod reload;
mod security_fanout;
mod security_files;
mod security_http;
mod security_modules;
mod security_sessions;
