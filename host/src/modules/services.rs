//! What the host offers modules (publish, push to users, call other
//! modules), as the module subsystem sees it. The server implements it with
//! the room index, the session table and the broker.

use super::{
    context::CallContext,
    pending::{CallFailure, CallSink},
};

/// Host services reachable from a module's `Host` handle.
///
/// `on_behalf` is the call the module is handling when it asks (see
/// `context.rs`), `None` when it acts on its own behalf. Each service
/// holds the module to what that call's user may do.
pub trait HostServices: Send + Sync + 'static {
    /// Publishes `data` (JSON text) to `rooms` (JSON array text); returns
    /// the number of subscriptions reached.
    fn publish(
        &self,
        module: &str,
        on_behalf: Option<&CallContext>,
        rooms: &str,
        data: &str,
    ) -> Result<u64, CallFailure>;

    /// Pushes `data` (JSON text) to every session of `user`.
    fn send_to_user(
        &self,
        module: &str,
        on_behalf: Option<&CallContext>,
        user: &str,
        data: &str,
    ) -> Result<u64, CallFailure>;

    /// Calls `command` of `target` from module `from`, for the user behind
    /// `on_behalf` (their roles decide what `from` may call). The answer
    /// goes to `sink`, exactly once, a refusal included: there is no second
    /// way back for a caller to answer itself.
    fn call_from_module(
        &self,
        from: &str,
        on_behalf: Option<&CallContext>,
        target: &str,
        command: &str,
        params: &str,
        sink: Box<dyn CallSink>,
    );
}
