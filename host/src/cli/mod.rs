//! The `modhost` subcommands, one file per command group; `main.rs` parses
//! the command line and calls these.
//!
//! # Layout
//! - this file: the config file a command reads (`--config`, else
//!   ./config.toml, else the embedded defaults)
//! - `run`: config → logging → host, until SIGINT/SIGTERM
//! - `log`: `[log] format`: text (colour only on a terminal) or JSON lines
//! - `user`: the account store's users, over `modhost::accounts::admin`;
//!   passwords come from stdin (or `MODHOST_ADMIN_PASSWORD` for
//!   `run --create-admin`), never from the command line
//! - `signing`: `keygen`, `sign`, `verify` over `modhost::signing::tools`,
//!   with key folders from the config; `verify` asks the host's own loader
//! - `new`: `modhost new`, a module crate from the template in `new/`
//! - `package`: `modhost package`: build, check, sign and drop into the
//!   plugins folder
//! - `status`: `modhost status`: a running host's modules, connections and
//!   rooms, from its admin API
//! - `jobs`: `modhost jobs …`, the job launcher over the admin API
//! - `admin_client`: the admin API client `status` and `jobs` share: host
//!   URL, admin token, error wording
//! - `dev_cert`: `modhost dev-cert`, a self-signed pair for `[server] tls`

pub(crate) mod admin_client;
pub(crate) mod dev_cert;
pub(crate) mod jobs;
pub(crate) mod log;
pub(crate) mod new;
pub(crate) mod package;
pub(crate) mod run;
pub(crate) mod signing;
pub(crate) mod status;
pub(crate) mod user;

use std::path::PathBuf;

use anyhow::Context;
use modhost::config;

/// `--config FILE` for the commands that read the host's config.
#[derive(clap::Args)]
pub(crate) struct ConfigArg {
    /// The config file (for its folders: modules, verify keys, state).
    /// Without it, ./config.toml, or the embedded defaults when there is
    /// none.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

/// The config file a command reads: `--config`, else ./config.toml when
/// there is one.
pub(crate) fn config_file(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let here = PathBuf::from("config.toml");
        here.exists().then_some(here)
    })
}

/// The config `--config` names, or ./config.toml, or the embedded defaults
/// (what `modhost run` would run on here).
pub(crate) fn load_config(config_path: Option<PathBuf>) -> anyhow::Result<config::Config> {
    Ok(match config_file(config_path) {
        Some(path) => config::load(&path)?,
        None => {
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            tracing::info!(
                "no config.toml here: running on the embedded defaults (modhost run --config FILE chooses one)"
            );
            config::embedded_default(&cwd)
        }
    })
}
