//! `export_module!` and the runtime behind it.
//!
//! A panic that crosses an `extern "C"` boundary kills the process, so every
//! entry point here runs the author's code inside `catch_unwind` and turns a
//! panic into an error value.
//!
//! The instance and its `Host` sit behind one lock: the instance thread
//! takes it for each message it handles (and waits for the next message
//! without it), and an inline call (`abi::InlineCalls`) takes it only if it
//! is free, so the module never sees two messages at once.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError},
};

use abi_stable::{
    external_types::crossbeam_channel::RReceiver,
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RResult, RString},
};

use crate::{
    abi::{
        ABI, AbiInfo, CallMsg, Failure, FromModule, HostContext, InlineCalls, InlineCalls_TO,
        InlineEntry, InlineOutcome, ModuleInstance, ModuleInstance_TO, ModuleInstanceBox,
        ModuleRoot, ModuleRoot_Ref, RunExit, Started, ToModule,
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

impl InlineEntry {
    /// The inline entry point `export_module!(M)` would export, for hosts
    /// that run a module they link (see [`ModuleRoot_Ref::of`]).
    pub fn of<M: Module>() -> Self {
        InlineEntry {
            start_inline: start_inline::<M>,
        }
    }
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
    build::<M>(ctx).map(|(runner, _)| runner).into()
}

/// The inline entry point `export_module!` exports for `M`.
#[doc(hidden)]
pub extern "C" fn start_inline<M: Module>(ctx: HostContext) -> RResult<Started, RString> {
    build::<M>(ctx)
        .map(|(instance, inline)| Started {
            instance,
            inline: InlineCalls_TO::from_value(inline, TD_Opaque),
            non_blocking: M::NON_BLOCKING.iter().map(|&c| RString::from(c)).collect(),
        })
        .into()
}

/// Runs `on_load` and wraps the instance for its thread and for inline
/// calls.
fn build<M: Module>(ctx: HostContext) -> Result<(ModuleInstanceBox, Inline<M>), RString> {
    let host = Host::new(ctx);
    match catch_unwind(AssertUnwindSafe(|| M::on_load(&host))) {
        Ok(Ok(module)) => {
            let inbox = host.inbox();
            let shared = Arc::new(Shared {
                instance: Mutex::new(Instance { module, host }),
                failed: Mutex::new(None),
            });
            let runner = Runner {
                shared: shared.clone(),
                inbox,
            };
            Ok((
                ModuleInstance_TO::from_value(runner, TD_Opaque),
                Inline { shared },
            ))
        }
        Ok(Err(reason)) => Err(reason.into()),
        Err(payload) => Err(format!("on_load panicked: {}", panic_message(&*payload)).into()),
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

/// An instance of `M` and its host handle. The instance thread and inline
/// calls take turns through [`Shared`]'s lock.
struct Instance<M> {
    module: M,
    host: Host,
}

/// What the instance thread and the inline entry point share.
struct Shared<M> {
    instance: Mutex<Instance<M>>,
    /// Why the instance could not be rebuilt after an inline call panicked:
    /// it takes no more messages and the instance thread's `run` ends.
    failed: Mutex<Option<String>>,
}

impl<M> Shared<M> {
    /// Handlers run under `catch_unwind`, so a poisoned lock only means a
    /// panic the runtime already answered; the instance was rebuilt then.
    fn lock(&self) -> MutexGuard<'_, Instance<M>> {
        self.instance.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failed(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Drives an instance from its inbox on the host's instance thread.
struct Runner<M> {
    shared: Arc<Shared<M>>,
    inbox: RReceiver<ToModule>,
}

/// Runs calls of non-blocking commands on the caller's thread.
struct Inline<M> {
    shared: Arc<Shared<M>>,
}

impl<M: Module> Instance<M> {
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

    /// Runs the handler for `call`: its result, its error, or the
    /// `module-panicked` failure and whether a new instance replaced it.
    fn handle(&mut self, call: &Call) -> Handled {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.module.handle(call, &self.host)));
        match outcome {
            Ok(Ok(value)) => Handled::Done(RResult::ROk(value.to_string().into())),
            Ok(Err(error)) => Handled::Done(RResult::RErr(error.into_failure())),
            Err(payload) => {
                let message = panic_message(&*payload);
                let failure = Failure::new(
                    ErrorCode::ModulePanicked,
                    format!(
                        "module panicked in `{}`: {message}; it was restarted",
                        call.command
                    ),
                );
                Handled::Panicked(failure, self.rebuild())
            }
        }
    }

    fn handle_call(&mut self, call: Call) -> Result<(), String> {
        let id = call.id;
        match self.handle(&call) {
            Handled::Done(RResult::ROk(result)) => self.host.send(FromModule::Reply {
                id,
                result,
                done: true,
            }),
            Handled::Done(RResult::RErr(failure)) => {
                self.host.send(FromModule::Error { id, failure })
            }
            Handled::Panicked(failure, rebuilt) => {
                self.host.send(FromModule::Error { id, failure });
                return rebuilt;
            }
        }
        Ok(())
    }

    /// Handles one message. `Ok(false)` after `Shutdown`; `Err` when the
    /// instance cannot go on.
    fn step(&mut self, msg: ToModule) -> Result<bool, String> {
        match msg {
            ToModule::Call(msg) => {
                let id = msg.id;
                match Call::from_msg(msg) {
                    Ok(call) => self.handle_call(call)?,
                    Err(error) => self.host.send(FromModule::Error {
                        id,
                        failure: error.into_failure(),
                    }),
                }
            }
            ToModule::Event(event) => {
                let data = serde_json::from_str(event.data.as_str()).unwrap_or_default();
                let (module, host) = (&mut self.module, &self.host);
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
                    module.on_event(event.name.as_str(), &data, host)
                })) {
                    self.host.error(format_args!(
                        "on_event({}) panicked: {}; restarting",
                        event.name,
                        panic_message(&*payload)
                    ));
                    self.rebuild()?;
                }
            }
            // An answer that arrived after `Host::call` gave up waiting.
            ToModule::CallResult(_) => {}
            ToModule::Reconfigure(config) => {
                self.host.set_config(config.as_str());
                let (module, host) = (&mut self.module, &self.host);
                match catch_unwind(AssertUnwindSafe(|| module.on_config(host))) {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => {
                        return Err(format!(
                            "new config rejected and the instance could not continue: {reason}"
                        ));
                    }
                    Err(payload) => {
                        return Err(format!("on_config panicked: {}", panic_message(&*payload)));
                    }
                }
            }
            ToModule::Shutdown => {
                let (module, host) = (&mut self.module, &self.host);
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| module.on_unload(host))) {
                    self.host.error(format_args!(
                        "on_unload panicked: {}",
                        panic_message(&*payload)
                    ));
                }
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// What a handler did with a call.
enum Handled {
    /// It returned a result or an error.
    Done(RResult<RString, Failure>),
    /// It panicked: the caller's answer, and whether the instance was
    /// rebuilt.
    Panicked(Failure, Result<(), String>),
}

impl<M: Module> ModuleInstance for Runner<M> {
    fn run(&mut self) -> RunExit {
        loop {
            // Wait without the lock, so inline calls run while it is idle.
            let deferred = self.shared.lock().host.take_deferred();
            let msg = match deferred {
                Some(msg) => msg,
                None => match self.inbox.recv() {
                    Ok(msg) => msg,
                    Err(_) => return RunExit::Disconnected,
                },
            };
            if let Some(reason) = self.shared.failed() {
                return RunExit::Failed(reason.into());
            }
            match self.shared.lock().step(msg) {
                Ok(true) => {}
                Ok(false) => return RunExit::Shutdown,
                Err(reason) => return RunExit::Failed(reason.into()),
            }
        }
    }
}

impl<M: Module> InlineCalls for Inline<M> {
    fn call(&self, msg: CallMsg) -> InlineOutcome {
        // Busy: the instance thread (or another inline call) holds it, and
        // waiting here would block the host's thread behind that message.
        let mut instance = match self.shared.instance.try_lock() {
            Ok(instance) => instance,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return InlineOutcome::Busy(msg),
        };
        if self.shared.failed().is_some() {
            return InlineOutcome::Busy(msg);
        }
        let call = match Call::from_msg(msg) {
            Ok(call) => call,
            Err(error) => return InlineOutcome::Done(RResult::RErr(error.into_failure())),
        };
        instance.host.set_inline(true);
        let handled = instance.handle(&call);
        instance.host.set_inline(false);
        match handled {
            Handled::Done(outcome) => InlineOutcome::Done(outcome),
            Handled::Panicked(failure, rebuilt) => {
                if let Err(reason) = &rebuilt {
                    *self
                        .shared
                        .failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(reason.clone());
                }
                InlineOutcome::Panicked {
                    failure,
                    rebuilt: rebuilt.map_err(RString::from).into(),
                }
            }
        }
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
        $crate::__export_inline!($module);
    };
}

/// Exports the inline entry point of `$module` under
/// [`INLINE_SYMBOL`](crate::abi::INLINE_SYMBOL). Used by `export_module!`.
#[cfg(not(feature = "__test-pre-inline"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_inline {
    ($module:ty) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub static modhost_inline_export_v1: $crate::abi::InlineExport =
            $crate::abi::InlineExport {
                layout: <$crate::abi::InlineEntry as $crate::abi_stable::StableAbi>::LAYOUT,
                entry: $crate::abi::InlineEntry {
                    start_inline: $crate::__private::start_inline::<$module>,
                },
            };
    };
}

/// Without the entry point, as a module built before it existed.
#[cfg(feature = "__test-pre-inline")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_inline {
    ($module:ty) => {};
}
