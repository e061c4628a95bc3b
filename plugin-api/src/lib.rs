//! The stable ABI between the modhost host and its modules, and the SDK
//! module authors write against.
//!
//! A module is a `cdylib` that implements [`Module`] and exports it with
//! [`export_module!`]. The host verifies the library's signature, loads it,
//! checks its ABI, and runs each instance on a thread of its own.
//!
//! ```
//! use modhost_plugin_api::{Call, CommandSpec, Host, Manifest, Module, ModuleError, export_module};
//! use serde_json::{Value, json};
//!
//! /// Greets the caller; `[modules.greeter] greeting = "Hi"` changes the word.
//! struct Greeter {
//!     greeting: String,
//! }
//!
//! impl Module for Greeter {
//!     fn manifest() -> Manifest {
//!         Manifest::new("greeter", env!("CARGO_PKG_VERSION"))
//!             .description("Says hello")
//!             .command(CommandSpec::new("greet").param("name"))
//!     }
//!
//!     fn on_load(host: &Host) -> Result<Self, String> {
//!         let greeting = host.config()["greeting"].as_str().unwrap_or("Hello");
//!         Ok(Greeter { greeting: greeting.to_owned() })
//!     }
//!
//!     fn handle(&mut self, call: &Call, host: &Host) -> Result<Value, ModuleError> {
//!         match call.command.as_str() {
//!             "greet" => {
//!                 let name: String = call.param("name")?;
//!                 host.debug(format_args!("greeting {name} for {}", call.user()));
//!                 Ok(json!({ "text": format!("{}, {name}!", self.greeting) }))
//!             }
//!             other => Err(ModuleError::new(format!("unknown command {other}"))),
//!         }
//!     }
//! }
//!
//! export_module!(Greeter);
//! ```
//!
//! Build it with `crate-type = ["cdylib", "rlib"]` and `panic = "unwind"`
//! (the default); a library built with `panic = "abort"` is refused.
//!
//! # Layout
//! - `types`: manifest, command specs, caller identity, error codes, log levels
//! - `message`: the typed messages host → module and module → host
//! - `host`: the context the host hands to a module, and the author's `Host` handle
//! - `module`: the author's `Module` trait, `Call` and `ModuleError`
//! - `root`: the root module the host finds in the library, and the ABI id
//! - `export`: `export_module!` and the panic-safe runtime behind it

// `#[sabi_trait]` expands to items rustc warns about; they are abi_stable's.
#![allow(non_local_definitions, non_camel_case_types)]

mod export;
mod host;
mod message;
mod module;
mod root;
mod types;

pub use host::{Host, HostContext, HostSink, HostSink_TO, HostSinkBox};
pub use message::{CallMsg, CallResultMsg, EventMsg, Failure, FromModule, ToModule};
pub use module::{Call, Module, ModuleError};
pub use root::{
    ABI, AbiInfo, ModuleInstance, ModuleInstance_TO, ModuleInstanceBox, ModuleRoot, ModuleRoot_Ref,
    RunExit,
};
pub use types::{Caller, CallerKind, CommandSpec, ErrorCode, LogLevel, Manifest};

/// abi_stable, re-exported so hosts and tools use the exact same version.
pub use abi_stable;

/// Items `export_module!` expands to. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::root_module;
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
}
