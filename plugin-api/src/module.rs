//! The [`Module`] trait: what a module author implements.

use serde_json::Value;

use crate::{call::Call, error::ModuleError, host::Host, types::Manifest};

/// A module: a manifest, a constructor, and a handler.
///
/// An instance lives on a thread of its own and handles one message at a
/// time, so `&mut self` needs no locking. If a handler panics, the call is
/// answered with `module-panicked`, the instance is dropped and a new one is
/// built with [`Module::on_load`].
pub trait Module: Sized + Send + 'static {
    /// Commands that never block and finish in microseconds (no sleeping,
    /// no I/O, no waiting on locks): the host may run their calls on its
    /// own thread instead of handing each to the instance thread, which
    /// saves two thread switches per call. While such a call runs, `Host`
    /// offers only logging (`publish`, `send_to_user`, `emit` and `call`
    /// return an error), and a command whose call overruns the host's
    /// budget goes back to the instance thread for good. Streaming
    /// commands are always run on the instance thread.
    const NON_BLOCKING: &'static [&'static str] = &[];

    /// Name, version and commands. Called once per load.
    fn manifest() -> Manifest;

    /// Builds an instance. An `Err` (or a panic) refuses this build of the
    /// module; a previous build, if any, keeps serving.
    fn on_load(host: &Host) -> Result<Self, String>;

    /// Handles one call. Required params were checked by the host. Return
    /// the result (for a streaming command, the last item; see
    /// [`Host::emit`]).
    fn handle(&mut self, call: &Call, host: &Host) -> Result<Value, ModuleError>;

    /// An event, on the instance's thread like a call. Ignored by default.
    /// The host sends `user_login`, `user_logout`, `user_disabled` and
    /// `user_roles_changed` for the users it keeps, with `data`
    /// `{"user": "account:<name>", "roles": [...]}` (the user as
    /// `caller.user` names it; never a token). Events are not queued
    /// behind a busy module: one with messages waiting may miss some.
    fn on_event(&mut self, name: &str, data: &Value, host: &Host) {
        let _ = (name, data, host);
    }

    /// The module's config table changed (`host.config()` has the new one).
    /// By default the instance is rebuilt with [`Module::on_load`].
    fn on_config(&mut self, host: &Host) -> Result<(), String> {
        *self = Self::on_load(host)?;
        Ok(())
    }

    /// The module is being replaced or removed. In-flight calls have been
    /// answered; nothing more will arrive.
    fn on_unload(&mut self, host: &Host) {
        let _ = host;
    }
}
