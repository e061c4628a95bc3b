//! External modules: programs in any language that connect to `GET /module`
//! (`[external] path`) and sign every frame with their ed25519 key, as
//! sse-platform's modules did, with the same rights and checks as
//! in-process modules (DESIGN §10, §11; issue 14).
//!
//! What sse-platform left open is closed here (`PRIOR_ART.md`): the module
//! name is bound to the key that signs (`verify_keys/<module>.pub`, the
//! same folders and trust checks as for signed builds), a `resolve_id` is
//! accepted once, the host signs its own frames, template names stay in
//! their folder, and no token is ever sent to a module.
//!
//! # Layout
//! - `upgrade`: `GET /module` (the JSON body of sse-platform's upgrade read
//!   and discarded, bounded) and `GET /module/key`
//! - `envelope`: `{"signed_msg","origin","resolve_id"}` in (verified) and
//!   out (signed with the host key), no I/O
//! - `host_key`: the host's signing key in `state_dir`, made on first use
//! - `replay`: each `resolve_id` once per module, bounded in time and count
//! - `connection`: one module's socket: frames in, order of checks, outbox
//! - `requests`: what a recognized module may ask (sse-platform's requests
//!   and modhost's `register`, `reply`, `publish`, `call_module`)
//! - `identity`: `get_user`, `get_user_list`, `check_permission` answered
//!   from the host's users (never a token)
//! - `templates`: `get_template`/`post_template`, names confined to a folder
//! - `endpoint`: a registered module as a broker endpoint (`ModuleEndpoint`);
//!   its calls wait in a `PendingCalls` table
//! - `table`: module name → connection and endpoint, the grace period after
//!   a disconnect, and the broker's `EndpointSource`

mod connection;
mod endpoint;
mod envelope;
mod host_key;
mod identity;
mod replay;
mod requests;
mod table;
mod templates;
mod upgrade;

#[cfg(test)]
mod tests;

pub use envelope::{EnvelopeError, Inbound};
pub use host_key::HostKeyError;
pub(crate) use host_key::load_or_create_named as load_or_create_host_key;
pub use table::{External, ExternalInfo};
pub use upgrade::{host_key, upgrade};
