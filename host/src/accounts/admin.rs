//! What `modhost user …` and `modhost run --create-admin` do to the store,
//! with the password read from a stream (stdin) or the environment, never
//! from the command line, where `ps` would show it to every user of the
//! machine.

use std::{io::BufRead, path::Path};

use super::{Store, StoreError, User, hash, name_problem, passwords::PasswordError};

/// Who the audit log names for changes made from the command line.
pub const CLI_ACTOR: &str = "cli";

/// The environment variable `run --create-admin` reads the password from.
pub const ADMIN_PASSWORD_ENV: &str = "MODHOST_ADMIN_PASSWORD";

/// The role `--create-admin` gives.
const ADMIN_ROLES: &[&str] = &[crate::auth::ADMIN_ROLE];

/// Why a `modhost user` command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An unacceptable password.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// An unacceptable user name.
    #[error("{0}")]
    Name(String),
    /// The password could not be read.
    #[error(
        "cannot read the password from stdin: {0}; pipe it in, e.g. `printf '%s' \"$PW\" | modhost user …`"
    )]
    Stdin(String),
}

/// The first line of `input`, without its line ending.
pub fn read_password(input: &mut dyn BufRead) -> Result<String, AdminError> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| AdminError::Stdin(e.to_string()))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(AdminError::Stdin("it was empty".into()));
    }
    Ok(password.to_owned())
}

fn checked_name(name: &str) -> Result<(), AdminError> {
    match name_problem(name) {
        Some(problem) => Err(AdminError::Name(format!("{name:?}: {problem}"))),
        None => Ok(()),
    }
}

/// `user add`: a new user with `roles`, and a password if one is given.
pub fn add(
    store: &Store,
    name: &str,
    email: Option<&str>,
    roles: &[String],
    password: Option<&str>,
) -> Result<User, AdminError> {
    checked_name(name)?;
    let hash = password.map(hash).transpose()?;
    Ok(store.add_user(CLI_ACTOR, name, email, hash.as_deref(), roles)?)
}

/// `user passwd`.
pub fn passwd(store: &Store, name: &str, password: &str) -> Result<User, AdminError> {
    if store.user(name)?.is_none() {
        return Err(StoreError::NoSuchUser(name.to_owned()).into());
    }
    Ok(store.set_password_hash(CLI_ACTOR, name, &hash(password)?)?)
}

/// `run --create-admin NAME`: make `name` an administrator with
/// `password` unless a user of that name exists (then it is left as it
/// is, so the flag can stay in a service's command line). Whether it was
/// made.
pub fn create_admin(state_dir: &Path, name: &str, password: &str) -> Result<bool, AdminError> {
    checked_name(name)?;
    let store = Store::open_in(state_dir)?;
    if store.user(name)?.is_some() {
        return Ok(false);
    }
    let roles: Vec<String> = ADMIN_ROLES.iter().map(|r| (*r).to_owned()).collect();
    match store.add_user(CLI_ACTOR, name, None, Some(&hash(password)?), &roles) {
        Ok(_) => Ok(true),
        // Made by another process since the check: as good as existing.
        Err(StoreError::UserExists(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// One line per user, for `user list`: name, state, roles, email.
pub fn list_line(user: &User) -> String {
    format!(
        "{}\t{}\t{}\t{}{}",
        user.name,
        if user.enabled() {
            "enabled"
        } else {
            "disabled"
        },
        if user.roles.is_empty() {
            "-".to_owned()
        } else {
            user.roles.join(",")
        },
        user.email.as_deref().unwrap_or("-"),
        if user.has_password {
            ""
        } else {
            "\t(no password)"
        }
    )
}
