//! Module endpoints: where the broker sends a call once it has checked it,
//! and where it finds them by module name.
//!
//! The broker's view of a module is independent of how the module is
//! hosted (DESIGN §10, §11). An in-process generation (`in_process.rs`) is
//! one kind of endpoint; an external module on `GET /module` and a module on
//! another host reached over NATS are the next two. All three get calls
//! that are already admitted by the broker: the module exists, the command
//! is in its manifest, the params are an object of the allowed size holding
//! the required keys, the caller has the role, and the caller is stamped by
//! the host. What differs is only how the call travels and how its answer
//! comes back, so that is all an endpoint implements.

use std::sync::Arc;

use modhost_plugin_api::{Caller, Manifest};

use super::CommandInfo;
use crate::modules::{Admission, CallSink, UserRights};

/// A checked call on its way to an endpoint.
#[derive(Debug)]
pub struct StampedCall<'a> {
    /// Unique among the calls of this broker; the id an endpoint matches
    /// answers by. (Ids are unique per host only: a call to another host
    /// is answered on this host's own inbox subject, which names it.)
    pub id: u64,
    /// The module the call is for (the endpoint's [`ModuleEndpoint::name`]).
    pub module: &'a str,
    /// The command, present in the endpoint's manifest.
    pub command: &'a str,
    /// JSON object text, within the params limit, holding every param the
    /// manifest requires.
    pub params: &'a str,
    /// Who is calling, stamped by this host. An endpoint passes it on
    /// unchanged: a module must never see an identity taken from params.
    pub caller: Caller,
    /// What the module may do for the user behind the call (host-side:
    /// an endpoint that runs the module elsewhere enforces it on the
    /// publishes and pushes that come back from it).
    pub user: Option<UserRights>,
    /// What the manifest says about the command.
    pub info: CommandInfo,
}

/// Where one module's calls run.
///
/// # Contract
///
/// Every call the broker dispatches is answered exactly once through its
/// sink: by the module's reply (after any stream items), the module's
/// error, a timeout, or a failure when the endpoint stops (drain,
/// disconnect). [`ModuleEndpoint::dispatch`] takes the sink by value and
/// does exactly one of these:
///
/// - returns [`Admission::Accepted`] and keeps the sink. From then on the
///   endpoint alone answers it, exactly once, and it must answer even if
///   the module never does: it enforces the call timeout
///   (`module-timeout`) and, when it stops or loses its connection,
///   answers what it still holds with `module-unavailable`.
///   `modules::PendingCalls` is a table that does all of this.
/// - returns [`Admission::Stopping`] with the sink unanswered: the endpoint
///   no longer takes calls because a successor serves (or is about to
///   serve) the same name. The broker looks the name up again and retries.
/// - returns [`Admission::Rejected`] with the sink unanswered and the
///   reason (full queue, degraded, not connected): the broker answers it.
///
/// A sink handed back can only come back through the return value, so an
/// endpoint cannot both keep it and return it; `CallSink::finish` consumes
/// the sink, so it cannot be answered twice.
///
/// Admission is decided inside `dispatch` rather than by a separate
/// `admit` call first: between the two, a queue could fill or a drain
/// begin, and the endpoint would have to refuse again anyway.
///
/// `dispatch` runs on the caller's thread, often a tokio worker: it must
/// only queue the call (a bounded `try_send`), never wait for the module.
///
/// # Other kinds of endpoint
///
/// - An external module on `GET /module`: `name` and `manifest` come from
///   its signed hello; `dispatch` puts the sink in a pending table and
///   `try_send`s a signed call frame on the connection's bounded outbox
///   (`Rejected` when full); reply frames finish pending entries; a sweeper
///   times them out; a closed socket fails the rest and deregisters it.
/// - A module on another host (`cluster::remote`): `manifest` from that
///   host's announcement; `dispatch` puts the sink in a pending table and
///   queues a NATS request to the module's subject (a queue group), whose
///   answers come back on this host's inbox; `Rejected` while NATS is
///   disconnected or too many calls wait; the table's sweeper times calls
///   out, and a lost link or a host that leaves fails the rest.
pub trait ModuleEndpoint: Send + Sync {
    /// The module's name: the key calls are routed by.
    fn name(&self) -> &str;

    /// The manifest the broker checks calls against before dispatching.
    fn manifest(&self) -> &Manifest;

    /// Hands a checked call to the module; see the contract above.
    fn dispatch(&self, call: StampedCall<'_>, sink: Box<dyn CallSink>) -> Admission;
}

/// Something that knows the endpoints of some modules by name: the registry
/// of in-process generations, the table of external modules connected on
/// `/module`, the host's built-in `jobs` module, the directory of modules on
/// other hosts (`cluster`).
pub trait EndpointSource: Send + Sync {
    /// The endpoint serving `module` now, if this source has one.
    fn resolve(&self, module: &str) -> Option<Arc<dyn ModuleEndpoint>>;
}

/// The broker's endpoint sources, asked in order: the first that knows a
/// name serves it.
///
/// This is where external and remote endpoints register: build the broker
/// with [`Endpoints::with`] for each new source. Sources are fixed once the
/// broker is built (an external module connecting later registers in its
/// own source's table, not here), so resolving a call takes no lock here.
pub struct Endpoints {
    sources: Vec<Arc<dyn EndpointSource>>,
    /// Modules on other hosts: asked last, and never for a call another
    /// host sent here (it would bounce between hosts).
    remote: Option<Arc<dyn EndpointSource>>,
}

impl Endpoints {
    /// Endpoints from `first`, asked before any added later. The in-process
    /// registry goes first: a module connecting from outside must not
    /// shadow a signed build this host loaded under the same name.
    pub fn new(first: Arc<dyn EndpointSource>) -> Self {
        Self {
            sources: vec![first],
            remote: None,
        }
    }

    /// Adds `source`, asked after the ones already there.
    pub fn with(mut self, source: Arc<dyn EndpointSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Sets the source of modules on other hosts, asked after every other
    /// one: a module this host serves is always called here.
    pub fn with_remote(mut self, source: Arc<dyn EndpointSource>) -> Self {
        self.remote = Some(source);
        self
    }

    /// The endpoint serving `module` now, from the first source that has
    /// one: this host's own first, then other hosts' (`Scope::Cluster`).
    pub fn resolve(&self, module: &str, scope: Scope) -> Option<Arc<dyn ModuleEndpoint>> {
        let local = self.sources.iter().find_map(|s| s.resolve(module));
        match (local, &self.remote, scope) {
            (Some(endpoint), _, _) => Some(endpoint),
            (None, Some(remote), Scope::Cluster) => remote.resolve(module),
            (None, _, _) => None,
        }
    }
}

/// Where a call may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Here or on another host: a call made on this host.
    Cluster,
    /// Only here: a call another host sent for a module it saw announced.
    Local,
}
