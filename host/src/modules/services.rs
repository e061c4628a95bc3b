//! What the host offers modules (publish, push to users, call other
//! modules), as the module subsystem sees it. The server implements it with
//! the room index, the session table and the broker.

use super::pending::{CallFailure, CallSink};

/// Host services reachable from a module's `Host` handle.
pub trait HostServices: Send + Sync + 'static {
    /// Publishes `data` (JSON text) to `rooms` (JSON array text); returns
    /// the number of subscriptions reached.
    fn publish(&self, module: &str, rooms: &str, data: &str) -> Result<u64, CallFailure>;

    /// Pushes `data` (JSON text) to every session of `user`.
    fn send_to_user(&self, module: &str, user: &str, data: &str) -> Result<u64, CallFailure>;

    /// Calls `command` of `target` on behalf of module `from`. The answer
    /// goes to `sink`, exactly once, a refusal included: there is no second
    /// way back for a caller to answer itself.
    fn call_from_module(
        &self,
        from: &str,
        target: &str,
        command: &str,
        params: &str,
        sink: Box<dyn CallSink>,
    );
}
