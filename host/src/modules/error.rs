//! Why a module build was refused, in operator words.

use std::path::PathBuf;

use crate::signing::{SeqError, SignatureError};

/// A refused module build: which file, which module (when known) and why.
#[derive(Debug, thiserror::Error)]
#[error("{}{kind}", subject(self))]
pub struct LoadError {
    /// The `.so` file that was refused.
    pub file: PathBuf,
    /// The signed module name, when the envelope could be read.
    pub module: Option<String>,
    /// What went wrong (boxed: some reasons carry whole signature errors).
    pub kind: Box<LoadErrorKind>,
}

/// The reason behind a [`LoadError`].
#[derive(Debug, thiserror::Error)]
pub enum LoadErrorKind {
    /// Missing, malformed or invalid signature, or the file changed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The signed `seq` is not above the highest one accepted.
    #[error(transparent)]
    Rollback(#[from] SeqError),
    /// The envelope says the module was built for another ABI.
    #[error(
        "built for ABI `{signed}` but this host speaks `{host}`: rebuild the module against this host's modhost-plugin-api and sign it again"
    )]
    AbiMismatch {
        /// The ABI id in the envelope.
        signed: String,
        /// The host's ABI id.
        host: String,
    },
    /// abi_stable refused the library (layout or version mismatch), or it is
    /// not a modhost module at all.
    #[error("{0}")]
    Library(String),
    /// Built with `panic = "abort"`: a panicking handler would kill the host.
    #[error(
        "built with panic = \"abort\": a panic would take the host down; build it with panic = \"unwind\" (the default)"
    )]
    PanicAbort,
    /// The library's own manifest disagrees with what was signed.
    #[error(
        "the library calls itself {found_name} {found_version} but was signed as {signed_name} {signed_version}: sign the library with its own name and version"
    )]
    ManifestMismatch {
        /// Signed module name.
        signed_name: String,
        /// Signed version.
        signed_version: String,
        /// The manifest's name.
        found_name: String,
        /// The manifest's version.
        found_version: String,
    },
    /// `manifest()` or `on_load` failed or panicked.
    #[error("{0}")]
    Start(String),
    /// The operator switched the module off in config.toml.
    #[error(
        "module {module} is disabled in config ([modules.{module}] enabled = false); set enabled = true to load it"
    )]
    Disabled {
        /// The module.
        module: String,
    },
    /// An operator switched the module off at runtime (the admin page).
    #[error("module {module} is disabled by an operator (admin page); enable it there")]
    DisabledByOperator {
        /// The module.
        module: String,
    },
    /// Reading or staging the file failed.
    #[error("{0}")]
    Io(String),
}

impl LoadErrorKind {
    /// A short name of the reason, for the refusals counter's `reason`
    /// label (`signature`, `rollback`, `abi-mismatch`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            LoadErrorKind::Signature(_) => "signature",
            LoadErrorKind::Rollback(_) => "rollback",
            LoadErrorKind::AbiMismatch { .. } => "abi-mismatch",
            LoadErrorKind::Library(_) => "library",
            LoadErrorKind::PanicAbort => "panic-abort",
            LoadErrorKind::ManifestMismatch { .. } => "manifest-mismatch",
            LoadErrorKind::Start(_) => "start-failed",
            LoadErrorKind::Disabled { .. } | LoadErrorKind::DisabledByOperator { .. } => "disabled",
            LoadErrorKind::Io(_) => "io",
        }
    }
}

/// `module "x": ` where the reason itself does not name the module.
fn subject(error: &LoadError) -> String {
    match (&error.module, &*error.kind) {
        (
            Some(module),
            LoadErrorKind::Library(_) | LoadErrorKind::PanicAbort | LoadErrorKind::Start(_),
        ) => format!("module {module:?}: "),
        _ => String::new(),
    }
}

impl LoadError {
    pub(crate) fn new(
        file: impl Into<PathBuf>,
        module: Option<&str>,
        kind: impl Into<LoadErrorKind>,
    ) -> Self {
        Self {
            file: file.into(),
            module: module.map(str::to_owned),
            kind: Box::new(kind.into()),
        }
    }
}
