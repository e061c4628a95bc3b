//! `modhost jobs launch|list|stop|logs`: the job launcher from a shell,
//! as calls to the built-in `jobs` module on a running host's admin API
//! (`POST /api/call` with `[admin] token`), so the CLI and websocket users
//! go through the same checks and the same registry.
//!
//! The host and the token are found as `admin_client` says. A password
//! is read from stdin (`--password-stdin`), never taken from the command
//! line where `ps` shows it.

use std::{io::BufRead as _, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::admin_client::{AdminClient, block_on};

/// `modhost jobs …`.
#[derive(Subcommand)]
pub(crate) enum JobsCommand {
    /// Launch a job of an `[apps.<name>]` for a user; prints the job.
    Launch {
        /// The app.
        app: String,
        /// The user the job is for.
        #[arg(long)]
        user: String,
        /// Read the job's password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        host: HostArgs,
    },
    /// List jobs (all, or one user's).
    List {
        /// Only this user's jobs.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Stop a job: its stop signal, the grace period, then SIGKILL to its group.
    Stop {
        /// The job's id.
        job_id: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Print the last lines of a job's log.
    Logs {
        /// The job's id.
        job_id: String,
        /// How many lines (at most 1000).
        #[arg(long, default_value_t = 100)]
        tail: u64,
        #[command(flatten)]
        host: HostArgs,
    },
}

/// Which host to ask.
#[derive(Args)]
pub(crate) struct HostArgs {
    /// The config file (for `[admin] token` and `[server] listen`).
    /// Without it, ./config.toml, or the embedded defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The host's base URL (default: http://<[server] listen>).
    #[arg(long)]
    url: Option<String>,
}

/// Runs `command`; `--config` is read as `modhost run` reads it.
pub(crate) fn jobs(command: JobsCommand) -> anyhow::Result<()> {
    let (host, command, params) = match command {
        JobsCommand::Launch {
            app,
            user,
            password_stdin,
            host,
        } => {
            let mut params = json!({"app": app, "user": user});
            if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the password from stdin")?;
                params["password"] = json!(line.trim_end_matches(['\r', '\n']));
            }
            (host, "launch", params)
        }
        JobsCommand::List { user, host } => (host, "list", json!({"user": user})),
        JobsCommand::Stop { job_id, host } => (host, "stop", json!({"job_id": job_id})),
        JobsCommand::Logs { job_id, tail, host } => {
            (host, "logs", json!({"job_id": job_id, "tail": tail}))
        }
    };
    let config = super::load_config(host.config)?;
    let client = AdminClient::new(&config, host.url)?;
    let result = block_on(call(&client, command, params))??;
    match command {
        "logs" => {
            for line in result["lines"].as_array().into_iter().flatten() {
                println!("{}", line.as_str().unwrap_or_default());
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(&result)?),
    }
    Ok(())
}

/// `jobs.<command>` on the host; the result, or its error.
async fn call(client: &AdminClient, command: &str, params: Value) -> anyhow::Result<Value> {
    let body = json!({"module": "jobs", "command": command, "params": params});
    let (status, text) = client.post("/api/call", &body).await?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer["error"]["message"].as_str().unwrap_or(&text);
        bail!("jobs.{command}: {message} (HTTP {status})");
    }
    Ok(answer["result"].clone())
}
