//! `modhost run`: config → logging → host, until SIGINT or SIGTERM.

use std::path::PathBuf;

use super::{config_file, load_config, log};
use anyhow::{Context, bail};
use modhost::{accounts::admin, server::Host};

/// Runs the host on the config `config_path` names (see [`load_config`]),
/// first making the administrator `create_admin` if asked.
pub(crate) fn run(
    config_path: Option<PathBuf>,
    create_admin: Option<String>,
) -> anyhow::Result<()> {
    log::init(log::format_in(config_file(config_path.clone()).as_deref()));
    let config = load_config(config_path)?;
    if let Some(name) = create_admin {
        if config.auth.accounts.enabled == Some(false) {
            bail!(
                "--create-admin makes an account, but [auth.accounts] enabled = false: enable accounts or drop the flag"
            );
        }
        let password = match std::env::var(admin::ADMIN_PASSWORD_ENV) {
            Ok(password) if !password.is_empty() => password,
            _ => admin::read_password(&mut std::io::stdin().lock()).with_context(|| {
                format!(
                    "--create-admin needs a password: set {} or pipe it in",
                    admin::ADMIN_PASSWORD_ENV
                )
            })?,
        };
        if admin::create_admin(&config.modules.state_dir, &name, &password)? {
            tracing::info!(user = %name, "made the administrator account");
        } else {
            tracing::info!(user = %name, "--create-admin: the user exists, left as it is");
        }
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listen = config.server.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!("cannot listen on {listen}: is another process using it? ([server] listen)")
            })?;
        let host = Host::build(config).await?;
        host.serve(listener, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
