//! On whose behalf a module acts when it calls back into the host.
//!
//! A module publishes, pushes and calls other modules through its `Host`
//! handle, and those requests carry no caller: the ABI has no field for
//! one, and a module must not be trusted to name it. The host knows anyway.
//! An instance runs on one thread the host started, takes its calls one at
//! a time in the order the host queued them, and answers each (reply or
//! error, sent by the SDK's runner when `handle` returns) before it takes
//! the next. So, on that thread, the call being handled is the oldest call
//! queued and not yet answered by the module. [`Handling`] keeps that
//! queue beside the instance's inbox.
//!
//! Anything else is the module acting on its own behalf: `on_load`, a
//! thread the module spawned, and the time between calls. A reconfigure or
//! a rebuild after a panic is not a call and sends no answer, so a callback
//! it makes while calls wait behind it is taken as the next call's. That
//! errs on the side of the user's limits: the module's own work is held to
//! that user's rooms, and a call it makes carries that user's roles, which
//! the user could have used directly anyway.
//!
//! Calls the host gave up on (timed out) stay queued here until the module
//! answers them: the module is still handling them.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, OnceLock},
    thread::ThreadId,
};

use modhost_plugin_api::Caller;

use crate::{rooms::Room, util::sync};

/// The call a module is handling, as the host stamped it.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Who called, as the module sees it (for a call from another module:
    /// the original user and roles, with the calling module's name).
    pub caller: Caller,
    /// The user behind the call, when there is one: what the module may do
    /// for them. `None` for the operator and for a module acting on its
    /// own behalf, which are not limited to a user's rooms.
    pub user: Option<UserRights>,
    /// The command being handled is admin-only (`min_role = "admin"`).
    pub admin_command: bool,
}

/// What a module may do for the user behind a call.
#[derive(Debug, Clone)]
pub struct UserRights {
    /// The rooms the user may subscribe to: a module publishes for them
    /// only to rooms these permit.
    pub allowed_rooms: Arc<[Room]>,
}

impl CallContext {
    /// Whether a module handling this call may push to `user`: its own
    /// caller always; another user only for the operator, a module on its
    /// own behalf, an admin, or from an admin-only command.
    pub fn may_push_to(&self, user: &str) -> bool {
        self.user.is_none()
            || self.admin_command
            || self.caller.has_role(crate::auth::ADMIN_ROLE)
            || self.caller.user.as_str() == user
    }

    /// Whether a module handling this call may publish to `room`: one of
    /// the user's allowed rooms must permit it, as for a subscribe.
    pub fn may_publish_to(&self, room: &Room) -> bool {
        match &self.user {
            None => true,
            Some(rights) => rights.allowed_rooms.iter().any(|a| a.permits(room)),
        }
    }
}

/// The calls one instance was given and has not answered yet, in the
/// order it takes them, and the thread it runs on.
#[derive(Default)]
pub(crate) struct Handling {
    thread: OnceLock<ThreadId>,
    queue: Mutex<VecDeque<(u64, Arc<CallContext>)>>,
}

impl Handling {
    /// Called first thing on the instance's thread.
    pub(crate) fn bind_to_current_thread(&self) {
        let _ = self.thread.set(std::thread::current().id());
    }

    /// Queues call `id` and runs `send`, which puts it in the inbox and
    /// says whether it could, under one lock: the order here is then the
    /// order in the inbox. If `send` fails the call is taken out again.
    pub(crate) fn queue(&self, id: u64, context: CallContext, send: impl FnOnce() -> bool) -> bool {
        let mut queue = sync::lock(&self.queue);
        queue.push_back((id, Arc::new(context)));
        let sent = send();
        if !sent {
            queue.pop_back();
        }
        sent
    }

    /// The module answered call `id`: it handles the next one now.
    pub(crate) fn answered(&self, id: u64) {
        let mut queue = sync::lock(&self.queue);
        // Always the front for a module built with the SDK; a position
        // search keeps a stray answer from dropping another call.
        if let Some(at) = queue.iter().position(|(queued, _)| *queued == id) {
            queue.remove(at);
        }
    }

    /// The call the module is handling, if the current thread is its
    /// instance thread and a call is under way; `None`: it acts on its own
    /// behalf.
    /// Whether no call waits for or is being handled by the instance
    /// thread: an inline call then overtakes none.
    pub(crate) fn is_idle(&self) -> bool {
        sync::lock(&self.queue).is_empty()
    }

    pub(crate) fn current(&self) -> Option<Arc<CallContext>> {
        if self.thread.get() != Some(&std::thread::current().id()) {
            return None;
        }
        sync::lock(&self.queue)
            .front()
            .map(|(_, context)| context.clone())
    }
}

#[cfg(test)]
mod tests {
    use modhost_plugin_api::CallerKind;

    use super::*;

    fn context(user: &str) -> CallContext {
        CallContext {
            caller: Caller {
                kind: CallerKind::User,
                user: user.into(),
                session: "s1".into(),
                roles: Default::default(),
                module: "".into(),
            },
            user: None,
            admin_command: false,
        }
    }

    fn current_user(handling: &Handling) -> Option<String> {
        handling.current().map(|c| c.caller.user.to_string())
    }

    #[test]
    fn the_oldest_unanswered_call_is_the_one_handled() {
        let handling = Handling::default();
        handling.bind_to_current_thread();
        assert_eq!(current_user(&handling), None, "no call: own behalf");
        for (id, user) in [(1, "alice"), (2, "bob")] {
            assert!(handling.queue(id, context(user), || true));
        }
        assert_eq!(current_user(&handling).as_deref(), Some("alice"));
        handling.answered(1);
        assert_eq!(current_user(&handling).as_deref(), Some("bob"));
        handling.answered(2);
        assert_eq!(current_user(&handling), None);
    }

    #[test]
    fn a_call_that_never_reached_the_inbox_is_not_queued() {
        let handling = Handling::default();
        handling.bind_to_current_thread();
        assert!(!handling.queue(1, context("alice"), || false));
        assert_eq!(current_user(&handling), None);
    }

    #[test]
    fn other_threads_act_on_the_module_own_behalf() {
        let handling = Arc::new(Handling::default());
        handling.bind_to_current_thread();
        assert!(handling.queue(1, context("alice"), || true));
        let other = handling.clone();
        let seen = std::thread::spawn(move || current_user(&other))
            .join()
            .unwrap();
        assert_eq!(seen, None, "a thread the module spawned");
        assert_eq!(current_user(&handling).as_deref(), Some("alice"));
    }
}
