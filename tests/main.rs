//! Integration tests: a real host on 127.0.0.1, real signed modules, real
//! websocket and HTTP clients.
//!
//! # Layout
//! - `harness_build`: builds the plugins and the `modhost` binary once
//! - `harness`: signs the plugins, workspaces and config, starts hosts
//! - `harness_client`: HTTP, websocket and raw-frame websocket clients
//! - `harness_process`: the `modhost` binary as a child process
//! - `modules`: signed loading and every refusal; panics; the CLI
//! - `browser_example`: `examples/browser/` from a static file server: the
//!   page, its script, `node --check` (issue 16 item 7)
//! - `module_e2e`: `modhost new` → `cargo test` → `modhost package` → a
//!   live answer, and an edit packaged again answering without a restart
//! - `operators`: `[log] format` (JSON lines, no colour in files), `run
//!   --help`, `modhost status` (issue 16 item 5)
//! - `repository`: cited design sections, relative links and licences
//!   are in the repository (issue 16 item 8)
//! - `module_tools`: `verify` agrees with the host on every refusal,
//!   `keygen`/`sign` read the config, every unloaded file is listed once
//!   per module (issue 16 items 3 and 4)
//! - `gateway`: websocket protocol, rooms and fan-out, triggers, metrics
//! - `gateway_auth`: bootstrap URLs and JWTs as high-templar has them
//! - `gateway_limits`: frame and publish sizes, slow and pipelining clients
//! - `legacy`: high-templar 3.1's dialect, frame by frame
//! - `bootstrap`: `[auth.bootstrap]` replies through the real binary
//! - `calls`: the command broker over websockets
//! - `reload`: hot reload of modules while calls keep flowing
//! - `reload_faults`: refused builds, panics and hung handlers contained
//! - `reload_config`: config.toml edited live, keys added, restarts
//! - `hostile_frames`: hostile frames (bad UTF-8, framing, deep JSON); the
//!   host and clients the other `hostile_*` files share
//! - `hostile_floods`: one connection flooding subscribes, calls, frames
//! - `hostile_connections`: clients that never read, connection storms
//! - `hostile_modules`: modules flooding, allocating, never unloading
//! - `hostile_inputs`: `/trigger/` bodies (property test), fuzz replays
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
//! - `jobs_support`: the jobs tests' app tables, launches, status polling,
//!   a reaper of every process their jobs start
//! - `jobs_launch`: `jobs.launch` of a real HTTPS app: password, ports, argv,
//!   status in the owner's room, other users kept out, limits (issue 17)
//! - `jobs_cli`: `modhost jobs launch|list|stop|logs` over the admin API
//! - `jobs_durable`: `kill -9` of the host: the running job re-adopted, not
//!   started twice, its port held; a dead one marked lost
//! - `jobs_modules`: an app's module makes its jobs' config, extra args and
//!   certificate (`gen_config`, through the broker, for the launching user)
//! - `jobs_supervise`: crashes and the restart policy, stopping a process
//!   group, the capped log
//! - `accounts_http`: `/auth/login|refresh|logout`, rate limits, access
//!   tokens and `[[auth.roles]]` rooms on `/ws/` (issue 15 items 3 and 4)
//! - `accounts_cli`: `modhost user …` and `run --create-admin`; passwords
//!   never in argv, `ps` or the log (issue 15 item 2)
//! - `oidc`: `[auth.oidc]` against `oidc_issuer`, a local OpenID Connect
//!   issuer: tokens, key rotation, refusals, an issuer down, huge or slow
//! - `oidc_https`: `[auth.oidc]` over https (`ca_file`), and its keys kept
//!   across a reload that leaves the table as it was
//! - `revocation`: disabled users, roles taken away and logouts reach open
//!   sockets (4003, `subscription-revoked`) and parked sessions; account
//!   events reach in-process and external modules (issue 15 items 6, 7)
//! - `history_recovery`: room history: reconnects get exactly what they
//!   missed or `complete:false`, wildcards, high-templar unchanged, the
//!   admin view (issue 18)
//! - `history_restart`: history across restarts (new epoch, or kept with
//!   `persist`) and within `max_bytes` with many rooms (issue 18)
//! - `nats_harness`: a throw-away `nats-server` per test (JetStream, its
//!   monitoring counters), and cluster members started on it
//! - `cluster`: hosts as one platform over NATS: cross-host fan-out,
//!   interest, escaping, NATS down and back (issue 19)
//! - `cluster_calls`: module calls across hosts: stamped callers, streams,
//!   errors, timeouts, modules and hosts leaving, local first, `/metrics`
//! - `cluster_history`: room history across hosts on the JetStream
//!   stream: `since` on another host, the stream's bounds, NATS down and
//!   back (issue 19 items 4, 5)
//! - `cluster_resume`: a session resumed on another host (its rooms, what
//!   it missed, its calls), racing hosts, a host gone, another user
//! - `metrics`: `/metrics` families present and moving under load, read by
//!   a Prometheus parser; `[metrics] token` and `listen` (issue 20)
//! - `tls`: `[server] tls`: wss, a certificate renewed on disk served
//!   without a restart, the 1001 reconnect hint, `modhost dev-cert`
//! - `admin_page`: `/admin/`: token and account logins, non-admins
//!   refused, CSRF and Origin checks, audited actions, over TLS (issue 20)
//! - `admin_feed`: `/admin/feed`, a view's live updates over a websocket
//! - `admin_page_bounds`: `/admin/` on the real binary: the session cap, the
//!   wrong-token limit, form sizes, actions audited in the log
//! - `webdriver`: a small W3C WebDriver client; starts chromedriver and
//!   headless Chromium, killed with the test
//! - `admin_browser`: the admin page in Chromium: login, a module dropped
//!   in, a refusal, a reset, a connection; screenshots (issue 20 item 4)

// Items shared between test files are `pub`; a test binary exports nothing.
#![allow(unreachable_pub)]

mod harness;
mod harness_build;
mod harness_client;
mod harness_process;
mod nats_harness;
mod rabbit;
mod webdriver;

mod accounts_cli;
mod accounts_http;
mod admin_browser;
mod admin_feed;
mod admin_page;
mod admin_page_bounds;
mod amqp;
mod bootstrap;
mod browser_example;
mod calls;
mod cluster;
mod cluster_calls;
mod cluster_history;
mod cluster_resume;
mod durability;
mod external_calls;
mod external_client;
mod external_protocol;
mod external_python;
mod gateway;
mod gateway_auth;
mod gateway_limits;
mod history_recovery;
mod history_restart;
mod hostile_connections;
mod hostile_floods;
mod hostile_frames;
mod hostile_inputs;
mod hostile_modules;
mod inline_calls;
mod jobs_cli;
mod jobs_durable;
mod jobs_launch;
mod jobs_modules;
mod jobs_supervise;
mod jobs_support;
mod legacy;
mod metrics;
mod module_e2e;
mod module_tools;
mod modules;
mod oidc;
mod oidc_https;
mod oidc_issuer;
mod operators;
mod reload;
mod reload_config;
mod reload_faults;
mod repository;
mod revocation;
mod security_fanout;
mod security_files;
mod security_http;
mod security_modules;
mod security_sessions;
mod tls;
