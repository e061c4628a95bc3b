//! Verify → sealed private copy → dlopen → ABI and manifest checks.
//!
//! Loading a library runs its constructors, so nothing is loaded before the
//! signature over its exact bytes has been checked. Those same bytes are
//! then written to a sealed memfd and loaded from `/proc/self/fd/N`: never
//! from `plugins/` (it could change between check and load) and never twice
//! from the same path (glibc would hand back the old image).

use std::{
    io::Write,
    os::fd::{AsRawFd, IntoRawFd, RawFd},
    path::{Path, PathBuf},
};

use modhost_plugin_api::{
    Manifest,
    abi::{ABI, INLINE_SYMBOL, InlineEntry, InlineExport, ModuleRoot_Ref},
    abi_stable::{
        StableAbi,
        abi_stability::abi_checking::check_layout_compatibility,
        library::{RawLibrary, lib_header_from_path},
        std_types::RResult,
    },
};

use crate::{
    config::ModulesConfig,
    signing::{Envelope, Keyring, SeqStore, SignatureError, read_library, verify_file},
};

use super::{
    abi_error,
    error::{LoadError, LoadErrorKind},
};

/// A verified library, loaded and checked, not yet started.
pub struct LoadedLibrary {
    /// The root module (the library stays mapped for the life of the process).
    pub root: ModuleRoot_Ref,
    /// The module's manifest; name and version equal the signed ones.
    pub manifest: Manifest,
    /// The verified envelope.
    pub envelope: Envelope,
    /// The file it came from.
    pub file: PathBuf,
    /// Size of the loaded image in bytes.
    pub size: u64,
    /// The entry point that runs calls of non-blocking commands on the
    /// caller's thread; `None` for a library built before it existed (or
    /// whose export does not match this host's layout).
    pub inline: Option<InlineEntry>,
}

/// What the loader checks a build against.
pub struct LoadPolicy<'a> {
    /// Trusted public keys.
    pub keyring: &'a Keyring,
    /// Rollback high-water marks.
    pub seqs: &'a SeqStore,
    /// Accept a `seq` at or below the highest seen.
    pub allow_rollback: bool,
}

/// A build whose signature checked out, not yet loaded: the envelope and
/// the exact bytes it vouches for. Splitting verification from loading lets
/// the registry notice a build it already runs (same hash and seq) before
/// the rollback guard or `dlopen` get involved.
pub struct SignedBuild {
    /// The verified envelope.
    pub envelope: Envelope,
    /// The bytes the signature covers; only these are ever loaded.
    pub bytes: Vec<u8>,
    /// The file they were read from.
    pub file: PathBuf,
}

/// Reads `file` and its `.sig` once and checks the signature and the ABI id.
/// Nothing is loaded.
pub fn verify(file: &Path, keyring: &Keyring) -> Result<SignedBuild, LoadError> {
    let (envelope, bytes) = verify_file(file, keyring).map_err(|e| {
        let module = claimed_module(&e).map(str::to_owned);
        LoadError::new(file, module.as_deref(), e)
    })?;
    if envelope.abi != ABI {
        let module = envelope.module.clone();
        return Err(LoadError::new(
            file,
            Some(&module),
            LoadErrorKind::AbiMismatch {
                signed: envelope.abi,
                host: ABI.to_owned(),
            },
        ));
    }
    Ok(SignedBuild {
        envelope,
        bytes,
        file: file.to_owned(),
    })
}

/// The module a refused envelope names, where the error knows it. Not
/// verified (that is what failed): it only files the refusal under the
/// module the file claims to be, for the operator.
fn claimed_module(error: &SignatureError) -> Option<&str> {
    match error {
        SignatureError::SizeMismatch { module, .. }
        | SignatureError::DigestMismatch { module }
        | SignatureError::NoKey { module }
        | SignatureError::BadSignature { module, .. } => Some(module),
        _ => None,
    }
}

/// Loads a verified build from a sealed private copy and checks that the
/// library is the module that was signed. Runs the library's constructors.
pub fn open(build: SignedBuild) -> Result<LoadedLibrary, LoadError> {
    let SignedBuild {
        envelope,
        bytes,
        file,
    } = build;
    let module = envelope.module.clone();
    let fail = |kind: LoadErrorKind| LoadError::new(&file, Some(&module), kind);
    let (root, manifest, inline) =
        open_image(&bytes, &format!("{module}-{}", envelope.seq)).map_err(fail)?;
    if manifest.name.as_str() != envelope.module || manifest.version.as_str() != envelope.version {
        return Err(fail(LoadErrorKind::ManifestMismatch {
            signed_name: envelope.module.clone(),
            signed_version: envelope.version.clone(),
            found_name: manifest.name.to_string(),
            found_version: manifest.version.to_string(),
        }));
    }
    Ok(LoadedLibrary {
        root,
        manifest,
        envelope,
        size: bytes.len() as u64,
        file,
        inline,
    })
}

/// Verifies and loads `file` (a `.so` with its `.sig` beside it): signature,
/// ABI id, rollback guard, then [`open`].
pub fn load(file: &Path, policy: &LoadPolicy<'_>) -> Result<LoadedLibrary, LoadError> {
    let build = verify(file, policy.keyring)?;
    let module = build.envelope.module.clone();
    policy
        .seqs
        .check(
            &module,
            build.envelope.seq,
            &build.envelope.sha512,
            policy.allow_rollback,
        )
        .map_err(|e| LoadError::new(file, Some(&module), e))?;
    open(build)
}

/// Every check the registry makes before it starts a build, in its order,
/// without starting it: signature and ABI id, `[modules.<name>] enabled`,
/// the rollback guard (`seqs`: `None` for a host that has accepted nothing
/// yet), then the library itself (layout, `panic = "unwind"`, manifest).
/// `modhost verify` runs it to say what the host would do with `file`.
/// Like the host, it runs the library's constructors once the signature
/// has checked out.
pub fn check(
    file: &Path,
    keyring: &Keyring,
    seqs: Option<&SeqStore>,
    modules: &ModulesConfig,
) -> Result<LoadedLibrary, LoadError> {
    let build = verify(file, keyring)?;
    let module = build.envelope.module.clone();
    if !modules.settings_for(&module).enabled {
        return Err(LoadError::new(
            file,
            Some(&module),
            LoadErrorKind::Disabled {
                module: module.clone(),
            },
        ));
    }
    if let Some(seqs) = seqs {
        seqs.check(
            &module,
            build.envelope.seq,
            &build.envelope.sha512,
            modules.allow_rollback,
        )
        .map_err(|e| LoadError::new(file, Some(&module), e))?;
    }
    open(build)
}

/// Loads a library without a signature to read its manifest and ABI id.
/// Only for `modhost sign` on the author's own build: it runs the library's
/// constructors.
pub fn inspect(file: &Path) -> Result<(Manifest, String), LoadError> {
    let bytes = read_library(file).map_err(|e| {
        LoadError::new(
            file,
            None,
            LoadErrorKind::Io(format!("cannot read {}: {e}", file.display())),
        )
    })?;
    let (root, manifest, _) =
        open_image(&bytes, "inspect").map_err(|k| LoadError::new(file, None, k))?;
    let abi = (root.abi_info())().abi.to_string();
    Ok((manifest, abi))
}

/// What `open_image` found in a library.
type Image = (ModuleRoot_Ref, Manifest, Option<InlineEntry>);

/// Writes `bytes` to a sealed memfd, loads it and runs the host-side checks.
fn open_image(bytes: &[u8], label: &str) -> Result<Image, LoadErrorKind> {
    let fd = sealed_copy(bytes, label)?;
    let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
    let header = lib_header_from_path(&path).map_err(|e| {
        tracing::debug!(error = %e, "full abi_stable load error");
        LoadErrorKind::Library(abi_error::summarize(&e))
    })?;
    let root = header.init_root_module::<ModuleRoot_Ref>().map_err(|e| {
        tracing::debug!(error = %e, "full abi_stable load error");
        LoadErrorKind::Library(abi_error::summarize(&e))
    })?;
    let info = (root.abi_info())();
    if info.abi.as_str() != ABI {
        return Err(LoadErrorKind::AbiMismatch {
            signed: info.abi.to_string(),
            host: ABI.to_owned(),
        });
    }
    if !info.panic_unwind {
        return Err(LoadErrorKind::PanicAbort);
    }
    match (root.manifest())() {
        RResult::ROk(manifest) => Ok((root, manifest, inline_entry(&path, label))),
        RResult::RErr(reason) => Err(LoadErrorKind::Start(reason.into_string())),
    }
}

/// The library's inline entry point, if it exports one whose layout this
/// host accepts. It is a second symbol beside the root module, not a root
/// field: abi_stable refuses a root module with fewer fields than the
/// host's, so a new field would lock out every module built before it.
fn inline_entry(path: &Path, label: &str) -> Option<InlineEntry> {
    // The same path names the image already loaded: this only adds a
    // reference to it, which is never dropped (libraries stay mapped).
    let library = RawLibrary::load_at(path).ok()?;
    // SAFETY: a symbol of this name is the `InlineExport` static
    // `export_module!` emits; `InlineExport` is `repr(C)` and never changes
    // shape (a new version gets a new name). The entry's own layout is
    // checked below before any of it is used.
    let export: &'static InlineExport =
        unsafe { &**library.get::<*const InlineExport>(INLINE_SYMBOL).ok()? };
    std::mem::forget(library);
    match check_layout_compatibility(<InlineEntry as StableAbi>::LAYOUT, export.layout) {
        Ok(()) => Some(export.entry),
        Err(e) => {
            let text = e.to_string();
            tracing::debug!(library = label, error = %text, "full inline entry layout error");
            tracing::warn!(
                library = label,
                "the module's inline entry point has a layout this host does not know, so all its calls run on its instance thread: {}",
                text.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim()
            );
            None
        }
    }
}

/// A sealed, anonymous copy of `bytes`. The descriptor is deliberately left
/// open for the life of the process: the library is never unloaded, and a
/// reused descriptor number would make `dlopen` return a stale image.
fn sealed_copy(bytes: &[u8], label: &str) -> Result<RawFd, LoadErrorKind> {
    use memfd::{FileSeal, MemfdOptions};
    let io = |what: &str, e: &dyn std::fmt::Display| LoadErrorKind::Io(format!("{what}: {e}"));
    let memfd = MemfdOptions::default()
        .allow_sealing(true)
        .close_on_exec(true)
        .create(format!("modhost-{label}"))
        .map_err(|e| io("cannot create a private copy (memfd)", &e))?;
    memfd
        .as_file()
        .write_all(bytes)
        .map_err(|e| io("cannot write the private copy", &e))?;
    memfd
        .add_seals(&[
            FileSeal::SealShrink,
            FileSeal::SealGrow,
            FileSeal::SealWrite,
            FileSeal::SealSeal,
        ])
        .map_err(|e| io("cannot seal the private copy", &e))?;
    let file = memfd.into_file();
    debug_assert!(file.as_raw_fd() >= 0);
    Ok(file.into_raw_fd())
}
