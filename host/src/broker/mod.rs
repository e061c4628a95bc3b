//! The command broker: checks a call against the module's manifest, stamps
//! the caller, and hands it to the endpoint serving the module (this
//! host's, or with `[cluster]` another host's when none here has it).
//!
//! # Layout
//! - `request`: `CallRequest` and the caller stamps (user, module, operator)
//! - `validate`: manifest checks (command, role, params) before a module sees a call
//! - `endpoint`: `ModuleEndpoint` (where calls run, and its answer-once
//!   contract), `EndpointSource`, `Endpoints` (lookup by module name, this
//!   host's sources before other hosts')
//! - `in_process`: in-process generations as endpoints, the registry as a source
//! - `metrics`: calls by module/command/code and their latency, recorded by
//!   a wrapper around each call's sink
//! - this file: `Broker::call`, the one entry: check, build the sink, dispatch,
//!   with retry across a hot swap

mod endpoint;
mod in_process;
mod metrics;
mod request;
mod validate;

#[cfg(test)]
mod tests;

use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use modhost_plugin_api::ErrorCode;

use crate::modules::{Admission, CallFailure, CallSink, Registry};

pub use endpoint::{EndpointSource, Endpoints, ModuleEndpoint, Scope, StampedCall};
pub use metrics::{CallLabels, CallMetrics, CommandLabels};
pub use request::CallRequest;
pub use validate::CommandInfo;

/// Times a call is offered to a module's endpoint that answers `Stopping`
/// (it is being swapped out) before the caller is told to try again. A swap
/// installs the successor before draining, so one retry nearly always does.
const SWAP_ATTEMPTS: usize = 8;

/// What the sink factory is told about a call refused before its command
/// was known to be valid: one answer is due (the error), no stream.
const REFUSED: CommandInfo = CommandInfo {
    needs_reply: true,
    streams: false,
};

/// What became of a call. Either way its sink has been, or will be,
/// answered exactly once; a caller never answers a call itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// An endpoint took the call and will answer its sink.
    Accepted(CommandInfo),
    /// The call was refused (checks or admission); its sink already has
    /// the failure.
    Refused,
}

/// Routes calls to module endpoints.
pub struct Broker {
    endpoints: Endpoints,
    next_id: AtomicU64,
    max_params_bytes: AtomicUsize,
    metrics: CallMetrics,
}

impl Broker {
    /// A broker over the in-process modules of `registry`.
    pub fn new(registry: Arc<Registry>, max_params_bytes: usize) -> Self {
        Self::with_endpoints(Endpoints::new(registry), max_params_bytes)
    }

    /// A broker over `endpoints` (in-process modules and any other source).
    pub fn with_endpoints(endpoints: Endpoints, max_params_bytes: usize) -> Self {
        Self {
            endpoints,
            next_id: AtomicU64::new(1),
            max_params_bytes: AtomicUsize::new(max_params_bytes),
            metrics: CallMetrics::default(),
        }
    }

    /// What every call answered so far recorded (for `/metrics`).
    pub fn metrics(&self) -> &CallMetrics {
        &self.metrics
    }

    /// Changes the params size limit (config reload).
    pub fn set_max_params_bytes(&self, bytes: usize) {
        self.max_params_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Checks a call without running it: the command it names, or why not.
    pub fn check(&self, req: &CallRequest<'_>) -> Result<CommandInfo, CallFailure> {
        self.resolve_checked(req, Scope::Cluster)
            .map(|(_, info)| info)
    }

    /// The one way to make a call: checks it (module known, command in its
    /// manifest, params, role), then dispatches it to the module's endpoint.
    ///
    /// `make_sink` is called exactly once, before anything is dispatched,
    /// with what the manifest says about the command — so a fire-and-forget
    /// command can get a sink that acks at once and discards the result.
    /// For a call refused by the checks it gets a one-answer, no-stream
    /// [`CommandInfo`] (the error is the answer). The sink it returns is
    /// answered exactly once: here if the call is refused, otherwise by the
    /// endpoint (reply, error, timeout or drain). The result only says
    /// which; the caller has nothing left to answer.
    pub fn call(
        &self,
        req: CallRequest<'_>,
        make_sink: impl FnOnce(&CommandInfo) -> Box<dyn CallSink>,
    ) -> Dispatched {
        self.call_in(Scope::Cluster, req, make_sink)
    }

    /// A call another host sent here: as [`Broker::call`], served only by
    /// this host's own modules. The caller comes stamped by the sending
    /// host; the checks run again against this host's manifest (a newer
    /// build may have changed it since the announcement).
    pub fn call_from_host(
        &self,
        req: CallRequest<'_>,
        make_sink: impl FnOnce(&CommandInfo) -> Box<dyn CallSink>,
    ) -> Dispatched {
        self.call_in(Scope::Local, req, make_sink)
    }

    fn call_in(
        &self,
        scope: Scope,
        req: CallRequest<'_>,
        make_sink: impl FnOnce(&CommandInfo) -> Box<dyn CallSink>,
    ) -> Dispatched {
        let checked = self.resolve_checked(&req, scope);
        // The only sink of this call. From here it is moved into exactly one
        // place: `refuse` (which answers it) or `dispatch`.
        let sink = make_sink(checked.as_ref().map_or(&REFUSED, |(_, info)| info));
        let sink = self.metrics.wrap(req.module, req.command, sink);
        match checked {
            Err(failure) => refuse(sink, failure),
            Ok((endpoint, info)) => self.dispatch(scope, &req, endpoint, info, sink),
        }
    }

    /// The endpoint serving the call's module and what its manifest says
    /// about the call's command, or why the call is refused.
    fn resolve_checked(
        &self,
        req: &CallRequest<'_>,
        scope: Scope,
    ) -> Result<(Arc<dyn ModuleEndpoint>, CommandInfo), CallFailure> {
        let endpoint = self.endpoints.resolve(req.module, scope).ok_or_else(|| {
            CallFailure::new(
                ErrorCode::UnknownModule,
                format!("no module named {:?} is loaded", req.module),
            )
        })?;
        let info = validate::check(
            endpoint.manifest(),
            req,
            self.max_params_bytes.load(Ordering::Relaxed),
        )?;
        Ok((endpoint, info))
    }

    /// Offers a checked call to `endpoint`, and to its successors while an
    /// endpoint answers `Stopping`. Every exit either leaves the sink with an
    /// endpoint that accepted it or answers it.
    fn dispatch(
        &self,
        scope: Scope,
        req: &CallRequest<'_>,
        mut endpoint: Arc<dyn ModuleEndpoint>,
        info: CommandInfo,
        mut sink: Box<dyn CallSink>,
    ) -> Dispatched {
        let params = req.params.unwrap_or("{}");
        for attempt in 0..SWAP_ATTEMPTS {
            if attempt > 0 {
                endpoint = match self.successor(req, scope) {
                    Ok(next) => next,
                    Err(failure) => return refuse(sink, failure),
                };
            }
            let call = StampedCall {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                module: req.module,
                command: req.command,
                params,
                caller: req.caller.clone(),
                user: req.user.clone(),
                info,
            };
            match endpoint.dispatch(call, sink) {
                Admission::Accepted => return Dispatched::Accepted(info),
                Admission::Rejected(back, failure) => return refuse(back, failure),
                Admission::Stopping(back) => {
                    sink = back;
                    // The successor is installed before the old endpoint
                    // stops taking calls; let the swap finish.
                    std::thread::yield_now();
                }
            }
        }
        refuse(
            sink,
            CallFailure::new(
                ErrorCode::ModuleUnavailable,
                format!("module {:?} is being replaced; try again", req.module),
            ),
        )
    }

    /// The endpoint that serves the module after a swap. Its manifest may
    /// differ from the one the call was first checked against (a new
    /// build), so the call is checked again: a command that now needs a role
    /// must not slip through a swap. The sink was already built for the
    /// first answer shape, which a new build rarely changes.
    fn successor(
        &self,
        req: &CallRequest<'_>,
        scope: Scope,
    ) -> Result<Arc<dyn ModuleEndpoint>, CallFailure> {
        let endpoint = self.endpoints.resolve(req.module, scope).ok_or_else(|| {
            CallFailure::new(
                ErrorCode::UnknownModule,
                format!("module {:?} was removed", req.module),
            )
        })?;
        validate::check(
            endpoint.manifest(),
            req,
            self.max_params_bytes.load(Ordering::Relaxed),
        )?;
        Ok(endpoint)
    }
}

/// Answers a refused call's sink with `failure`.
fn refuse(sink: Box<dyn CallSink>, failure: CallFailure) -> Dispatched {
    sink.finish(Err(failure));
    Dispatched::Refused
}

/// A sink that drops the module's answer (fire-and-forget commands).
pub struct Discard;

impl CallSink for Discard {
    fn item(&mut self, _result: &str) {}
    fn finish(self: Box<Self>, _outcome: Result<&str, CallFailure>) {}
}
