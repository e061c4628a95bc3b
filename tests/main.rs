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
//! - `security_http`: the HTTP layer against hostile clients: bodies before
//!   tokens, half-sent requests, cross-site websockets, demo secrets
//! - `durability`: state on disk survives `kill -9` at any moment
//! - `rabbit`: a throw-away RabbitMQ node, shared by the AMQP tests
//! - `amqp`: the `[trigger.amqp]` source against it

// Items shared between test files are `pub`; a test binary exports nothing.
#![allow(unreachable_pub)]

mod harness;
mod rabbit;

mod amqp;
mod bootstrap;
mod calls;
mod durability;
mod gateway;
mod hostile;
mod legacy;
mod modules;
mod reload;
mod security_http;
