//! config.toml → [`Config`].
//!
//! # Layout
//! - `settings`: every setting with a default, declared once: model field,
//!   raw field, default, bounds, hint, live or restart, diff line
//! - `declare`: the `section!` macro those declarations use, and why it is
//!   a macro; `codec`: the kinds of value an entry can hold; `tls`: the
//!   codec of `[server] tls = { cert, key }`, the one setting that is a table
//! - `model`: the validated types every part of the host reads;
//!   `json_path`: [`JsonPath`], a checked dotted path into JSON (bootstrap
//!   replies)
//! - `raw`: the file's shape (serde) for the top level and the tables that
//!   are not settings (`[auth]`, …), and validation into `model`;
//!   `auth`: the `[auth]` part of that validation (`oidc`: its
//!   `[auth.oidc]` table); `trigger`: the
//!   `[trigger]` part (tokens, `[trigger.amqp]`); `apps`: `[apps.<name>]`,
//!   the programs users launch as jobs
//!   `[trigger]` part (tokens, `[trigger.amqp]`); `history`: the
//!   `[history]` part (rooms that keep recent publications); `cluster`:
//!   `[cluster]`, the NATS server hosts share
//! - `shape`: the key check, walking the parsed document against the raw
//!   structs' declared keys
//! - `error`: [`ConfigError`], `path:line:column: message` plus a hint
//! - `diff`: what changed between two configs, for live reload
//!
//! Reading a file takes two stages (STYLE.md habit 13): the text is parsed
//! into a spanned TOML document, its keys are checked against the
//! declarations, and it is deserialized into `raw::RawConfig`, then
//! validated into [`Config`]. The spanned document is kept alongside so that
//! every error, including validation errors found long after parsing, points
//! at the line of the key it is about.
//!
//! `[modules.<name>]` tables are passed through untouched (as JSON) apart
//! from the keys the host reads itself (`enabled`, `call_timeout_ms`,
//! `publishes_per_second`).

mod apps;
mod auth;
mod cluster;
mod codec;
mod declare;
mod diff;
mod error;
mod history;
mod json_path;
mod model;
mod oidc;
mod raw;
mod report;
mod settings;
mod shape;
#[cfg(test)]
mod tests;
mod tls;
mod trigger;
mod value;
pub mod watch;

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use serde::Deserialize;

pub use auth::USER_PLACEHOLDER;
pub use codec::{ANY_ORIGIN, serialized_origin};
pub use diff::{describe_changes, restart_required};
pub use error::{ConfigError, Diagnostic, MAX_CONFIG_BYTES, Position};
pub use json_path::{
    JsonPath, JsonPathError, MAX_JSON_PATH_BYTES, MAX_JSON_PATH_SEGMENTS, PathBlocked,
};
pub use model::*;
pub use tls::TlsFiles;

/// The repository's config.toml, compiled in: what `modhost run` uses when
/// no file is given (and what the quickstart runs on). A unit test keeps it
/// parsing.
const EMBEDDED: &str = include_str!("../../../config.toml");

/// config.toml holds the tokens, roles and module settings: if anyone on
/// the machine can write it, anyone can make themselves admin. Said at
/// every load (start-up and each reload) until it is fixed; not refused,
/// because some deployments manage the file through group tooling on
/// purpose, and refusing a reload would leave the host on stale settings.
fn warn_if_world_writable(file: &std::fs::File, shown: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    if let Ok(meta) = file.metadata()
        && meta.mode() & 0o002 != 0
    {
        tracing::warn!(
            path = %shown.display(),
            "config file {} is world-writable (mode {:04o}): anyone on this machine can change its tokens, roles and modules; run `chmod o-w {}`",
            shown.display(),
            meta.mode() & 0o7777,
            shown.display()
        );
    }
}

/// Read and validate the config file at `path`.
///
/// Relative paths inside it resolve against the file's folder. Files larger
/// than [`MAX_CONFIG_BYTES`] are refused before they are read in full.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let shown = absolute(path);
    let io = |io| ConfigError::Io {
        path: shown.clone(),
        io,
    };
    let file = crate::util::fs::open_regular(path).map_err(io)?;
    warn_if_world_writable(&file, &shown);
    // `take` bounds the read even if the file grows while we read it.
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        let len = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    match String::from_utf8(bytes) {
        Ok(text) => parse(&text, path),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            let ctx = report::Ctx {
                path,
                text: &prefix,
                doc: None,
            };
            Err(ctx.not_utf8(valid))
        }
    }
}

/// Validate config text that was read from `path`.
///
/// `path` names the file in error messages and anchors relative paths:
/// they resolve against `path.parent()`, made absolute with the current
/// directory if needed. The file itself is not touched.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let source = absolute(path);
    // `path` names a file; only a path without a file name (`""`, `/`) is
    // taken as the folder itself.
    let base = match (path.file_name(), source.parent()) {
        (Some(_), Some(parent)) => parent.to_path_buf(),
        _ => source.clone(),
    };
    let mut config = parse_with_base(text, path, &base)?;
    config.source = Some(source);
    Ok(config)
}

/// The embedded default config (the repository's config.toml), with its
/// relative paths resolved against `base_dir` and `source: None`.
pub fn embedded_default(base_dir: &Path) -> Config {
    let base = absolute(base_dir);
    parse_with_base(EMBEDDED, Path::new("<embedded config.toml>"), &base)
        .expect("the embedded config.toml is valid (checked by a unit test)")
}

/// Why `config` must not run, if it accepts one of the secrets the
/// quickstart publishes (`change-me`, `alice-secret`, …) while listening
/// beyond loopback; `None` if it may. Parsing already refuses such a file;
/// a reload checks again with the running `server.listen`, which a changed
/// `listen` does not replace until a restart.
pub fn published_secret_error(config: &Config) -> Option<String> {
    let (path, secret) = raw::published_secret(config)?;
    let problem = raw::published_secret_problem(&path, secret, config.server.listen);
    Some(match problem.hint {
        Some(hint) => format!("{}; {hint}", problem.message),
        None => problem.message,
    })
}

/// `path` made absolute against the current folder, without touching the
/// file system otherwise (no symlinks resolved; the file need not exist).
fn absolute(path: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_default();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Both stages; `path` is only used in messages, `base` anchors relative paths.
fn parse_with_base(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
    let mut ctx = report::Ctx {
        path,
        text,
        doc: None,
    };
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            len: text.len() as u64,
        });
    }
    let doc = toml::de::DeTable::parse(text).map_err(|e| ctx.syntax(&e))?;
    ctx.doc = Some(doc.get_ref());
    // Unknown keys first, from the document itself: serde ignores them.
    shape::check(doc.get_ref(), raw::RawConfig::FIELDS).map_err(|p| p.into_error(&ctx))?;
    // The deserializer consumes its document; keep ours for error locations.
    let raw = raw::RawConfig::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| ctx.serde(&e))?;
    raw.validate(base).map_err(|p| p.into_error(&ctx))
}
