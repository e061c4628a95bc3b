//! Test doubles for calls, shared by the unit tests of whatever answers
//! them (pending calls, the cluster's remote calls and directory): a sink
//! that writes down how it was answered, and an operator's call.

use std::sync::{Arc, Mutex};

use modhost_plugin_api::{Caller, CallerKind};

use super::{CallFailure, CallSink};
use crate::broker::{CommandInfo, StampedCall};

/// A sink that writes each answer down as a line: `item <result>`,
/// `done <result>` or `failed <code>`; its clones share the lines.
#[derive(Clone, Default)]
pub(crate) struct Record(Arc<Mutex<Vec<String>>>);

impl Record {
    /// The answers so far, oldest first.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl CallSink for Record {
    fn item(&mut self, result: &str) {
        self.0.lock().unwrap().push(format!("item {result}"));
    }
    fn finish(self: Box<Self>, outcome: Result<&str, CallFailure>) {
        let line = match outcome {
            Ok(r) => format!("done {r}"),
            Err(f) => format!("failed {}", f.code),
        };
        self.0.lock().unwrap().push(line);
    }
}

/// Call `id` of the operator to `echo`'s `echo`, which wants an answer
/// and may stream items.
pub(crate) fn operator_call(id: u64) -> StampedCall<'static> {
    StampedCall {
        id,
        module: "echo",
        command: "echo",
        params: "{}",
        caller: Caller {
            kind: CallerKind::Operator,
            user: "".into(),
            session: "".into(),
            roles: Default::default(),
            module: "".into(),
        },
        user: None,
        info: CommandInfo {
            needs_reply: true,
            streams: true,
        },
    }
}
