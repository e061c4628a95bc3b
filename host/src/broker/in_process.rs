//! In-process generations as module endpoints: a loaded build's instance
//! thread is the endpoint, and the module registry is where the broker
//! finds it.

use std::sync::Arc;

use modhost_plugin_api::Manifest;

use super::endpoint::{EndpointSource, ModuleEndpoint, StampedCall};
use crate::modules::{Admission, CallSink, Generation, Registry};

/// The generation's pending-call table keeps the endpoint contract: it
/// times calls out, and the drain or a stopped instance fails the rest.
impl ModuleEndpoint for Generation {
    fn name(&self) -> &str {
        &self.name
    }

    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn dispatch(&self, call: StampedCall<'_>, sink: Box<dyn CallSink>) -> Admission {
        self.call(
            call.id,
            call.command,
            call.params,
            call.caller,
            call.user,
            sink,
        )
    }
}

/// The registry resolves to the generation serving a name now; during a hot
/// swap the old one answers `Stopping` and the broker asks again.
impl EndpointSource for Registry {
    fn resolve(&self, module: &str) -> Option<Arc<dyn ModuleEndpoint>> {
        self.get(module).map(|g| g as Arc<dyn ModuleEndpoint>)
    }
}
