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
//! (the default); a library built with `panic = "abort"` is refused. Test it
//! in-process with `modhost-plugin-testkit`: `TestHost::of::<Greeter>()`.
//!
//! The crate root holds only what an author writes against. The binary
//! interface the host and the testkit drive (root module, messages, the
//! context an instance starts with, the checks a call passes) is in [`abi`].
//!
//! # Layout
//! - `types`: manifest, command specs, caller identity, error codes, log levels
//! - `abi/`: the wire side: messages, host context, root module and ABI id,
//!   call validation (see its own Layout)
//! - `error`: [`ModuleError`], what handlers and `Host` methods fail with
//! - `call`: the [`Call`] a handler gets, with its params parsed
//! - `host`: the author's [`Host`] handle over the host context
//! - `module`: the author's [`Module`] trait
//! - `export`: `export_module!` and the panic-safe runtime behind it

// `#[sabi_trait]` expands to items rustc warns about; they are abi_stable's.
#![allow(non_local_definitions, non_camel_case_types)]

pub mod abi;
mod call;
mod error;
mod export;
mod host;
mod module;
mod types;

// The author's API. Consider semver implications carefully: every item here
// is something a module's source names.
pub use call::Call;
pub use error::ModuleError;
pub use host::Host;
pub use module::Module;
pub use types::{Caller, CallerKind, CommandSpec, ErrorCode, LogLevel, Manifest};

/// abi_stable, re-exported so hosts and tools use the exact same version.
pub use abi_stable;

/// Items `export_module!` expands to. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{root_module, start_inline};
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
}
