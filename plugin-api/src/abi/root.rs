//! The root module every module library exports, and the ABI id.
//!
//! The root module is an abi_stable prefix type: abi_stable compares its full
//! type layout (and every type reachable from it) with the host's when the
//! library is loaded, and refuses a mismatch before any module code runs
//! beyond the library's constructors.

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RStr, RString},
};

use super::context::HostContext;
use crate::types::Manifest;

/// Identifies the binary interface a module was built against:
/// `modhost-plugin-api=<major.minor>;abi_stable=0.11;<target triple>`.
///
/// `modhost sign` records it in the `.sig` envelope and the host refuses a
/// module whose id differs from its own before loading any of its code.
pub const ABI: &str = concat!(
    "modhost-plugin-api=",
    "0.1",
    ";abi_stable=0.11;",
    env!("MODHOST_TARGET")
);

/// What the library reports about how it was built.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct AbiInfo {
    /// The [`ABI`] id the library was compiled with.
    pub abi: RStr<'static>,
    /// Whether the library was built with `panic = "unwind"`. With `abort`,
    /// a panic in a handler would take the host down, so such a library is
    /// refused.
    pub panic_unwind: bool,
    /// Only in the ABI-drift test fixture: a changed interface.
    #[cfg(feature = "__test-abi-drift")]
    pub drift: u64,
}

/// Why an instance's `run` returned.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub enum RunExit {
    /// It received `Shutdown` and ran `on_unload`.
    Shutdown,
    /// The host dropped the inbox.
    Disconnected,
    /// A handler panicked and no new instance could be built (why attached).
    /// Panics the module recovers from by rebuilding itself never end `run`.
    Failed(RString),
}

/// A running module instance, driven by a host-owned thread.
#[abi_stable::sabi_trait]
pub trait ModuleInstance: Send {
    /// Serves the inbox until shutdown, disconnection or a panic.
    #[sabi(last_prefix_field)]
    fn run(&mut self) -> RunExit;
}

/// An owned, FFI-safe [`ModuleInstance`].
pub type ModuleInstanceBox = ModuleInstance_TO<'static, RBox<()>>;

/// The root module: what the host finds in the library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ModuleRoot_Ref)))]
#[sabi(missing_field(panic))]
pub struct ModuleRoot {
    /// How the library was built.
    pub abi_info: extern "C" fn() -> AbiInfo,
    /// The module's manifest (an error if building it panicked).
    pub manifest: extern "C" fn() -> RResult<Manifest, RString>,
    /// Builds an instance; the host then calls `run` on a thread of its own.
    #[sabi(last_prefix_field)]
    pub start: extern "C" fn(HostContext) -> RResult<ModuleInstanceBox, RString>,
}

impl RootModule for ModuleRoot_Ref {
    declare_root_module_statics! {ModuleRoot_Ref}

    const BASE_NAME: &'static str = "modhost_module";
    const NAME: &'static str = "modhost module";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

#[cfg(test)]
mod tests {
    #[test]
    fn abi_id_names_this_crate_version() {
        let major_minor: Vec<&str> = env!("CARGO_PKG_VERSION").split('.').take(2).collect();
        let expected = format!("modhost-plugin-api={}", major_minor.join("."));
        assert!(super::ABI.starts_with(&expected), "{}", super::ABI);
        assert!(super::ABI.ends_with(env!("MODHOST_TARGET")));
    }
}
