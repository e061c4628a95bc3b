//! Modules switched off and on by an operator at runtime (the admin page).
//!
//! Disabling deregisters the running generation (it drains like a removed
//! one) and files its build as `disabled`, as `[modules.<name>] enabled =
//! false` does; new builds of the module are refused as disabled until it
//! is enabled again, which loads its files from the modules folder. The
//! switch is kept across restarts in `state_dir/disabled-modules` (one
//! name per line), so a module switched off for misbehaving does not come
//! back with the next start. config.toml's `enabled = false` wins: a
//! module disabled there cannot be enabled here.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::SystemTime,
};

use super::{super::error::LoadErrorKind, ModuleEvent, Refusal, Registry, lock, read, write};
use crate::util::fs::write_atomically;

/// The file in `state_dir` naming the modules an operator disabled.
pub const DISABLED_FILE: &str = "disabled-modules";

/// Why an operator's disable or enable did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ToggleError {
    /// Neither running nor a file in the modules folder.
    #[error("no module named {0:?} is loaded or in the modules folder")]
    Unknown(String),
    /// Enable of a module that is not disabled by an operator.
    #[error("module {0:?} is not disabled by an operator")]
    NotDisabled(String),
    /// config.toml disables it, which the admin page does not override.
    #[error(
        "module {0:?} is disabled in config.toml ([modules.{0}] enabled = false); set enabled = true there"
    )]
    DisabledInConfig(String),
    /// Enabled, but none of its files loaded.
    #[error("module {module:?} is enabled, but no build of it loaded: {reason}")]
    NotLoaded {
        /// The module.
        module: String,
        /// Why (each refused file's reason is listed too).
        reason: String,
    },
}

/// The modules an operator disabled, as `state_dir`'s [`DISABLED_FILE`]
/// lists them (none when it is missing; a file that cannot be read is
/// logged and counts as none).
pub(super) fn read_disabled(state_dir: &Path) -> HashSet<String> {
    let path = state_dir.join(DISABLED_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
        Err(e) => {
            tracing::warn!(
                "cannot read {}: {e}; modules an operator disabled are loaded",
                path.display()
            );
            HashSet::new()
        }
    }
}

impl Registry {
    /// Writes the modules an operator disabled to [`DISABLED_FILE`]; a
    /// failure is logged (the switch holds until the host restarts).
    fn save_disabled(&self) {
        let mut names: Vec<String> = read(&self.operator_disabled).iter().cloned().collect();
        names.sort();
        let text: String = names.iter().map(|n| format!("{n}\n")).collect();
        let path = read(&self.settings).modules.state_dir.join(DISABLED_FILE);
        if let Err(e) = write_atomically(&path, text.as_bytes(), 0o600) {
            tracing::warn!(
                "{e}; the modules disabled from the admin page are loaded again at the next start"
            );
        }
    }

    /// Whether an operator switched `name` off.
    pub(super) fn disabled_by_operator(&self, name: &str) -> bool {
        read(&self.operator_disabled).contains(name)
    }

    /// Files of the modules folder filed under `name` that are not loaded,
    /// the disabled ones (the build that ran) first.
    fn files_of(&self, name: &str) -> Vec<PathBuf> {
        let mut files: Vec<(bool, PathBuf)> = read(&self.refused)
            .iter()
            .filter(|(_, r)| r.module.as_deref() == Some(name))
            .map(|(file, r)| (!r.disabled, file.clone()))
            .collect();
        files.sort();
        files.into_iter().map(|(_, file)| file).collect()
    }

    /// Switches `name` off: its generation is deregistered and drained, its
    /// build listed as disabled, and its builds refused until
    /// [`enable`](Self::enable). Disabling a disabled module is no error.
    pub fn disable(&self, name: &str) -> Result<(), ToggleError> {
        let _serial = lock(&self.load_lock);
        let running = self.get(name);
        if running.is_none() && self.files_of(name).is_empty() {
            return Err(ToggleError::Unknown(name.to_owned()));
        }
        write(&self.operator_disabled).insert(name.to_owned());
        self.save_disabled();
        let error = LoadErrorKind::DisabledByOperator {
            module: name.to_owned(),
        }
        .to_string();
        if let Some(g) = running
            && self.remove_locked(name, "disabled by an operator")
        {
            write(&self.refused).insert(
                g.file.clone(),
                Refusal {
                    module: Some(name.to_owned()),
                    error: error.clone(),
                    at: SystemTime::now(),
                    disabled: true,
                },
            );
        }
        lock(&self.history)
            .entry(name.to_owned())
            .or_default()
            .last_error = Some(error);
        tracing::info!(module = %name, "module disabled by an operator: its builds are not loaded until it is enabled on the admin page");
        Ok(())
    }

    /// Switches `name` back on and loads its build from the modules folder
    /// (the newest that loads). Returns the generation now serving.
    pub fn enable(&self, name: &str) -> Result<u64, ToggleError> {
        let _serial = lock(&self.load_lock);
        if !write(&self.operator_disabled).remove(name) {
            return Err(ToggleError::NotDisabled(name.to_owned()));
        }
        self.save_disabled();
        self.record(name, ModuleEvent::new("enabled", None, "by an operator"));
        if !read(&self.settings).modules.settings_for(name).enabled {
            return Err(ToggleError::DisabledInConfig(name.to_owned()));
        }
        tracing::info!(module = %name, "module enabled by an operator: loading its build");
        let mut reason = "its file is gone from the modules folder".to_owned();
        for file in self.files_of(name) {
            if !file.exists() {
                write(&self.refused).remove(&file);
                continue;
            }
            match self.load_locked(&file) {
                Ok(outcome) => return Ok(outcome.generation().generation),
                Err(e) => {
                    reason = e.to_string();
                    self.refuse(&file, &e);
                }
            }
        }
        Err(ToggleError::NotLoaded {
            module: name.to_owned(),
            reason,
        })
    }
}
