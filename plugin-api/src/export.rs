//! `export_module!` and the runtime behind it.
//!
//! A panic that crosses an `extern "C"` boundary kills the process, so every
//! entry point here runs the author's code inside `catch_unwind` and turns a
//! panic into an error value.

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RResult, RString},
};

use crate::{
    abi::{
        ABI, AbiInfo, Failure, FromModule, HostContext, ModuleInstance, ModuleInstance_TO,
        ModuleInstanceBox, ModuleRoot, ModuleRoot_Ref, RunExit, ToModule,
    },
    call::Call,
    host::Host,
    module::Module,
    types::{ErrorCode, Manifest},
};

/// Builds the root module for `M`. Called by `export_module!`.
#[doc(hidden)]
pub fn root_module<M: Module, const UNWIND: bool>() -> ModuleRoot_Ref {
    ModuleRoot {
        abi_info: abi_info::<UNWIND>,
        manifest: manifest::<M>,
        start: start::<M>,
    }
    .leak_into_prefix()
}

impl ModuleRoot_Ref {
    /// The root module `export_module!(M)` would export, built in this
    /// process without a library: for hosts that run a module they link
    /// (the testkit), so tests need not name the exported symbol.
    ///
    /// No layout check is needed: both sides are this same build. Each call
    /// leaks one small prefix struct, as loading a library does.
    pub fn of<M: Module>() -> Self {
        root_module::<M, { cfg!(panic = "unwind") }>()
    }
}

extern "C" fn abi_info<const UNWIND: bool>() -> AbiInfo {
    AbiInfo {
        abi: ABI.into(),
        panic_unwind: UNWIND,
        #[cfg(feature = "__test-abi-drift")]
        drift: 1,
    }
}

extern "C" fn manifest<M: Module>() -> RResult<Manifest, RString> {
    catch_unwind(M::manifest)
        .map_err(|payload| {
            RString::from(format!("manifest() panicked: {}", panic_message(&*payload)))
        })
        .into()
}

extern "C" fn start<M: Module>(ctx: HostContext) -> RResult<ModuleInstanceBox, RString> {
    let host = Host::new(ctx);
    match catch_unwind(AssertUnwindSafe(|| M::on_load(&host))) {
        Ok(Ok(module)) => RResult::ROk(ModuleInstance_TO::from_value(
            Runner { module, host },
            TD_Opaque,
        )),
        Ok(Err(reason)) => RResult::RErr(reason.into()),
        Err(payload) => {
            RResult::RErr(format!("on_load panicked: {}", panic_message(&*payload)).into())
        }
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is named).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

/// An instance of `M` and its host handle, driven by `run`.
struct Runner<M> {
    module: M,
    host: Host,
}

impl<M: Module> Runner<M> {
    /// Drops a module whose handler panicked and builds a fresh one; its
    /// state may have been left half-updated. `Err` if that fails too.
    fn rebuild(&mut self) -> Result<(), String> {
        match catch_unwind(AssertUnwindSafe(|| M::on_load(&self.host))) {
            Ok(Ok(module)) => {
                self.module = module;
                Ok(())
            }
            Ok(Err(reason)) => Err(format!("restart after a panic failed: {reason}")),
            Err(payload) => Err(format!(
                "restart after a panic panicked: {}",
                panic_message(&*payload)
            )),
        }
    }

    fn handle_call(&mut self, call: Call) -> Result<(), String> {
        let id = call.id;
        let outcome = catch_unwind(AssertUnwindSafe(|| self.module.handle(&call, &self.host)));
        match outcome {
            Ok(Ok(value)) => self.host.send(FromModule::Reply {
                id,
                result: value.to_string().into(),
                done: true,
            }),
            Ok(Err(error)) => self.host.send(FromModule::Error {
                id,
                failure: error.into_failure(),
            }),
            Err(payload) => {
                let message = panic_message(&*payload);
                self.host.send(FromModule::Error {
                    id,
                    failure: Failure::new(
                        ErrorCode::ModulePanicked,
                        format!(
                            "module panicked in `{}`: {message}; it was restarted",
                            call.command
                        ),
                    ),
                });
                return self.rebuild();
            }
        }
        Ok(())
    }
}

impl<M: Module> ModuleInstance for Runner<M> {
    fn run(&mut self) -> RunExit {
        while let Some(msg) = self.host.next_message() {
            let step = match msg {
                ToModule::Call(msg) => {
                    let id = msg.id;
                    match Call::from_msg(msg) {
                        Ok(call) => self.handle_call(call),
                        Err(error) => {
                            self.host.send(FromModule::Error {
                                id,
                                failure: error.into_failure(),
                            });
                            Ok(())
                        }
                    }
                }
                ToModule::Event(event) => {
                    let data = serde_json::from_str(event.data.as_str()).unwrap_or_default();
                    let (module, host) = (&mut self.module, &self.host);
                    match catch_unwind(AssertUnwindSafe(|| {
                        module.on_event(event.name.as_str(), &data, host)
                    })) {
                        Ok(()) => Ok(()),
                        Err(payload) => {
                            self.host.error(format_args!(
                                "on_event({}) panicked: {}; restarting",
                                event.name,
                                panic_message(&*payload)
                            ));
                            self.rebuild()
                        }
                    }
                }
                // An answer that arrived after `Host::call` gave up waiting.
                ToModule::CallResult(_) => Ok(()),
                ToModule::Reconfigure(config) => {
                    self.host.set_config(config.as_str());
                    let (module, host) = (&mut self.module, &self.host);
                    match catch_unwind(AssertUnwindSafe(|| module.on_config(host))) {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(reason)) => Err(format!(
                            "new config rejected and the instance could not continue: {reason}"
                        )),
                        Err(payload) => {
                            Err(format!("on_config panicked: {}", panic_message(&*payload)))
                        }
                    }
                }
                ToModule::Shutdown => {
                    let (module, host) = (&mut self.module, &self.host);
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| module.on_unload(host)))
                    {
                        self.host.error(format_args!(
                            "on_unload panicked: {}",
                            panic_message(&*payload)
                        ));
                    }
                    return RunExit::Shutdown;
                }
            };
            if let Err(reason) = step {
                return RunExit::Failed(reason.into());
            }
        }
        RunExit::Disconnected
    }
}

/// Exports `$module` (a type implementing [`Module`]) as this library's
/// module. Use it once, in a `cdylib` crate.
///
/// It emits the single symbol the host looks for (abi_stable's root module
/// loader) and records whether the library was built with
/// `panic = "unwind"`.
#[macro_export]
macro_rules! export_module {
    ($module:ty) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader = {
            extern "C" fn __modhost_root() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(
                    $crate::__private::root_module::<$module, { cfg!(panic = "unwind") }>,
                )
            }
            // SAFETY: the constructor returns the root module of type
            // `ModuleRoot_Ref`, the type the header is declared for.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::abi::ModuleRoot_Ref>(
                    __modhost_root,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
