//! `notes`: messidge's demo module, ported. Each user writes short notes and
//! reads back their own, never anyone else's.
//!
//! | command | params | result |
//! |---|---|---|
//! | `write_note` | `note` (string, ≤ 4096 bytes) | `{"count": n}`, the caller's notes after the write |
//! | `fetch_notes` | none | `{"notes": [...]}`, the caller's notes, oldest first |
//!
//! Notes belong to the **calling user** as the host stamped it
//! (`Call::user`), never to anything in params, which is what messidge's
//! reserved `user` param was for. A call without a user (from another module
//! or the operator) is refused with `forbidden`.
//!
//! Config: `[modules.notes] max_notes_per_user = 100` (the default). A write
//! past the limit fails with a `module-error` that says so. A config change
//! applies to the next write and keeps the stored notes.
//!
//! **Storage is in memory only.** Notes are lost when the module is reloaded,
//! when the host restarts, and when a panic makes the host rebuild the
//! instance. This is a demo, not a database.
//!
//! # Layout
//! - [`Notebook`]: the per-user store and its limits; all the logic, tested
//!   without a host
//! - [`limit_from_config`]: reads `max_notes_per_user`
//! - [`Notes`]: the thin `Module` impl
//! - `tests.rs`: unit tests, plus the `Module` impl through the testkit

use std::collections::BTreeMap;

use modhost_plugin_api::{
    Call, CommandSpec, ErrorCode, Host, Manifest, Module, ModuleError, export_module,
};
use serde_json::{Value, json};

#[cfg(test)]
mod tests;

/// Longest note, in bytes of UTF-8.
pub const MAX_NOTE_BYTES: usize = 4096;

/// `max_notes_per_user` when the config does not set it.
pub const DEFAULT_MAX_NOTES_PER_USER: usize = 100;

/// Every user's notes, in memory.
#[derive(Debug, Clone)]
pub struct Notebook {
    /// User id → notes, oldest first. A `BTreeMap` so that dumps and tests
    /// see users in a stable order.
    by_user: BTreeMap<String, Vec<String>>,
    max_per_user: usize,
}

impl Notebook {
    /// An empty notebook allowing `max_per_user` notes per user.
    pub fn new(max_per_user: usize) -> Self {
        Self {
            by_user: BTreeMap::new(),
            max_per_user,
        }
    }

    /// Changes the limit. Stored notes stay, even over a lowered limit; only
    /// new writes are refused.
    pub fn set_limit(&mut self, max_per_user: usize) {
        self.max_per_user = max_per_user;
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.max_per_user
    }

    /// Stores `note` for `user` and returns how many notes `user` now has.
    pub fn write(&mut self, user: &str, note: String) -> Result<usize, ModuleError> {
        check_user(user)?;
        if note.len() > MAX_NOTE_BYTES {
            return Err(ModuleError {
                code: ErrorCode::TooLarge,
                message: format!(
                    "a note may be at most {MAX_NOTE_BYTES} bytes, this one is {}",
                    note.len()
                ),
            });
        }
        let notes = self.by_user.entry(user.to_owned()).or_default();
        if notes.len() >= self.max_per_user {
            return Err(ModuleError::new(format!(
                "note limit reached: at most {} notes per user (max_notes_per_user)",
                self.max_per_user
            )));
        }
        notes.push(note);
        Ok(notes.len())
    }

    /// `user`'s notes, oldest first (empty if they wrote none).
    pub fn fetch(&self, user: &str) -> Result<&[String], ModuleError> {
        check_user(user)?;
        Ok(self.by_user.get(user).map_or(&[], Vec::as_slice))
    }
}

/// Notes need a user to belong to.
fn check_user(user: &str) -> Result<(), ModuleError> {
    if user.is_empty() {
        return Err(ModuleError::forbidden(
            "notes are per user: this call has no calling user",
        ));
    }
    Ok(())
}

/// `max_notes_per_user` from the module's config table: a positive integer,
/// or [`DEFAULT_MAX_NOTES_PER_USER`] when absent.
pub fn limit_from_config(config: &Value) -> Result<usize, String> {
    match config.get("max_notes_per_user") {
        None | Some(Value::Null) => Ok(DEFAULT_MAX_NOTES_PER_USER),
        Some(value) => value
            .as_u64()
            .filter(|&n| n > 0)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("max_notes_per_user must be a positive integer, got {value}")),
    }
}

/// The notes module.
pub struct Notes {
    notebook: Notebook,
}

impl Module for Notes {
    fn manifest() -> Manifest {
        Manifest::new("notes", env!("CARGO_PKG_VERSION"))
            .description("Per-user notes, kept in memory (messidge's demo)")
            .command(
                CommandSpec::new("write_note")
                    .param("note")
                    .description("Stores a note (≤ 4096 bytes) for the caller; returns {count}"),
            )
            .command(
                CommandSpec::new("fetch_notes")
                    .description("Returns the caller's notes as {notes}"),
            )
    }

    fn on_load(host: &Host) -> Result<Self, String> {
        let limit = limit_from_config(host.config())?;
        Ok(Notes {
            notebook: Notebook::new(limit),
        })
    }

    fn handle(&mut self, call: &Call, _host: &Host) -> Result<Value, ModuleError> {
        match call.command.as_str() {
            "write_note" => {
                let count = self.notebook.write(call.user(), call.param("note")?)?;
                Ok(json!({ "count": count }))
            }
            "fetch_notes" => Ok(json!({ "notes": self.notebook.fetch(call.user())? })),
            other => Err(ModuleError {
                code: ErrorCode::UnknownCommand,
                message: format!("notes has no command `{other}`"),
            }),
        }
    }

    /// Applies a new limit without rebuilding the instance, which would drop
    /// every stored note. A bad value keeps the old limit: refusing it here
    /// would end the instance and lose the notes too.
    fn on_config(&mut self, host: &Host) -> Result<(), String> {
        match limit_from_config(host.config()) {
            Ok(limit) => self.notebook.set_limit(limit),
            Err(reason) => host.warn(format_args!(
                "{reason}; keeping max_notes_per_user = {}",
                self.notebook.limit()
            )),
        }
        Ok(())
    }
}

export_module!(Notes);
