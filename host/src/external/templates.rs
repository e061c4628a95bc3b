//! `get_template` / `post_template`: files in `[external] templates`, and
//! nowhere else.
//!
//! sse-platform joined the name onto its folder, so `../../etc/passwd` read
//! any file the platform could. Here a name is a relative path of plain
//! components (no `..`, `.`, root or empty part, no NUL), at most
//! [`MAX_NAME`] bytes; the file, with symlinks resolved
//! (canonicalisation), must still lie inside the folder, also resolved; it
//! is opened as a regular file only (`util::fs::open_regular`) and read up
//! to `max_template_bytes`. A write goes to an existing folder inside the
//! template folder (none are made), never through a symlink (the new file
//! is renamed over the name, replacing a link rather than following it),
//! and is atomic. Hidden names (a part starting with `.`) are refused too:
//! the atomic write's temp files are hidden, and so are a folder's own
//! dotfiles.

use std::{
    io::Read as _,
    path::{Component, Path, PathBuf},
};

use crate::util::fs::{open_regular, write_atomically};

/// Longest template name, in bytes.
pub(super) const MAX_NAME: usize = 255;

/// Why a template request failed; [`TemplateError::reason`] is the
/// `reason` the module gets (sse-platform's words where it had them).
#[derive(Debug, thiserror::Error)]
pub(super) enum TemplateError {
    /// The configured folder does not exist.
    #[error(
        "the template folder {} does not exist: create it or set [external] templates",
        .0.display()
    )]
    NotSetUp(PathBuf),
    /// A name that would leave the folder or is not a plain relative path.
    #[error("template name {0:?} is refused: {1}")]
    BadName(String, &'static str),
    /// No such template.
    #[error("no template named {0:?}")]
    NotFound(String),
    /// Past `[external] max_template_bytes`.
    #[error("the template is larger than {0} bytes ([external] max_template_bytes)")]
    TooLarge(usize),
    /// The file system said no.
    #[error("template {0:?}: {1}")]
    Io(String, std::io::Error),
}

impl TemplateError {
    /// The `reason` field of the reply.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Self::NotSetUp(_) => "template_directory_not_set_up",
            Self::BadName(..) => "template_name_refused",
            Self::NotFound(_) => "template_not_found",
            Self::TooLarge(_) => "template_too_large",
            Self::Io(..) => "template_io_error",
        }
    }
}

/// Checks `name`'s shape (no file system access).
fn check_name(name: &str) -> Result<(), TemplateError> {
    let refuse = |why| Err(TemplateError::BadName(name.to_owned(), why));
    if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
        return refuse("names are 1 to 255 bytes");
    }
    let path = Path::new(name);
    if path.is_absolute() {
        return refuse("absolute paths are not allowed");
    }
    for part in path.components() {
        match part {
            Component::Normal(p) if !p.to_string_lossy().starts_with('.') => {}
            Component::Normal(_) => return refuse("hidden names are not allowed"),
            Component::ParentDir => return refuse("'..' is not allowed"),
            _ => return refuse("only plain relative names are allowed"),
        }
    }
    if name.ends_with('/') {
        return refuse("a name must end in a file name");
    }
    Ok(())
}

/// The template folder, resolved.
fn root(folder: &Path) -> Result<PathBuf, TemplateError> {
    folder
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| TemplateError::NotSetUp(folder.to_owned()))
}

fn outside(name: &str) -> TemplateError {
    TemplateError::BadName(name.to_owned(), "it leads outside the template folder")
}

/// The text of template `name`.
pub(super) fn read(folder: &Path, name: &str, max: usize) -> Result<String, TemplateError> {
    check_name(name)?;
    let root = root(folder)?;
    let resolved = match root.join(name).canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TemplateError::NotFound(name.to_owned()));
        }
        Err(e) => return Err(TemplateError::Io(name.to_owned(), e)),
    };
    if !resolved.starts_with(&root) {
        return Err(outside(name));
    }
    let file = open_regular(&resolved).map_err(|e| TemplateError::Io(name.to_owned(), e))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TemplateError::Io(name.to_owned(), e))?;
    if bytes.len() > max {
        return Err(TemplateError::TooLarge(max));
    }
    String::from_utf8(bytes).map_err(|_| {
        TemplateError::Io(
            name.to_owned(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        )
    })
}

/// Writes `text` as template `name`, replacing any earlier one.
pub(super) fn write(
    folder: &Path,
    name: &str,
    text: &str,
    max: usize,
) -> Result<(), TemplateError> {
    check_name(name)?;
    if text.len() > max {
        return Err(TemplateError::TooLarge(max));
    }
    let root = root(folder)?;
    let joined = root.join(name);
    let (Some(parent), Some(file)) = (joined.parent(), joined.file_name()) else {
        return Err(outside(name));
    };
    let parent = match parent.canonicalize() {
        Ok(p) => p,
        Err(_) => {
            return Err(TemplateError::BadName(
                name.to_owned(),
                "its folder does not exist in the template folder",
            ));
        }
    };
    if !parent.starts_with(&root) {
        return Err(outside(name));
    }
    write_atomically(&parent.join(file), text.as_bytes(), 0o644)
        .map_err(|e| TemplateError::Io(name.to_owned(), e.source))
}
