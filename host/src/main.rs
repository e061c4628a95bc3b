//! The `modhost` command: run the host, and the module signing tools.
//!
//! # Layout
//! - `Cli`: the command line (clap)
//! - `run`: config → logging → host, until SIGINT/SIGTERM
//! - `keygen`, `sign`, `verify`: thin wrappers over `modhost::signing::tools`
//! - `user`: the account store's users, over `modhost::accounts::admin`;
//!   passwords come from stdin (or `MODHOST_ADMIN_PASSWORD` for
//!   `run --create-admin`), never from the command line
//! - `jobs_cli`: `modhost jobs …`, the job launcher over the admin API

mod jobs_cli;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use modhost::{
    accounts::{Store, admin},
    config, modules,
    server::Host,
    signing::tools,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "modhost",
    version,
    about = "Platform host for signed, hot-reloadable modules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host.
    Run {
        /// The config file. Without it, ./config.toml, or the embedded
        /// defaults when there is none.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Make this user an administrator account before starting, unless
        /// it exists. The password comes from MODHOST_ADMIN_PASSWORD, or
        /// else the first line of stdin.
        #[arg(long, value_name = "NAME")]
        create_admin: Option<String>,
    },
    /// Manage the host's own users (the account store in state_dir).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Create a signing key for a module and trust its public key.
    Keygen {
        /// Module name the key signs for.
        module: String,
        /// Folder for the private key (`<module>.key`, mode 0600).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Folder whose `<module>.pub` gets the public key appended.
        #[arg(long, default_value = "verify_keys")]
        verify_keys: PathBuf,
    },
    /// Sign a module library: writes `<lib.so>.sig`.
    Sign {
        /// The `.so` to sign.
        lib: PathBuf,
        /// The module's private key file.
        #[arg(long)]
        key: PathBuf,
        /// Rollback guard; must grow with every release. Default: Unix time.
        #[arg(long)]
        seq: Option<u64>,
        /// Module name (default: from the library's manifest, which loads
        /// the library; give both --module and --version to sign without
        /// loading it).
        #[arg(long)]
        module: Option<String>,
        /// Version (default: from the library's manifest).
        #[arg(long)]
        version: Option<String>,
    },
    /// Check a module library's signature.
    Verify {
        /// The `.so` to check.
        lib: PathBuf,
        /// Folder(s) of `<module>.pub` files.
        #[arg(long, default_value = "verify_keys")]
        verify_keys: Vec<PathBuf>,
    },
    /// Launch, list, stop jobs and read their logs on a running host.
    Jobs {
        #[command(subcommand)]
        command: jobs_cli::JobsCommand,
    },
}

/// `modhost user …`. Each takes `--config` to find `[modules] state_dir`.
#[derive(Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        /// The login name: ASCII letters, digits and . _ @ -.
        name: String,
        /// A role; repeat for more.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// An email address to keep with the user.
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of stdin. Without it the
        /// user has no password until `user passwd`.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the users.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Disable a user: no more logins, and its tokens stop working.
    Disable {
        /// The user.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Enable a disabled user.
    Enable {
        /// The user.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Add and remove roles.
    Role {
        /// The user.
        name: String,
        /// A role to add; repeat for more.
        #[arg(long, value_name = "ROLE")]
        add: Vec<String>,
        /// A role to remove; repeat for more.
        #[arg(long, value_name = "ROLE")]
        remove: Vec<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Set a user's password (ends its login sessions).
    Passwd {
        /// The user.
        name: String,
        /// Read the password from the first line of stdin (required: a
        /// password on the command line would show in `ps`).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The config file (for `[modules] state_dir`). Without it,
    /// ./config.toml, or the embedded defaults when there is none.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            create_admin,
        } => run(config, create_admin),
        Command::User { command } => user(command),
        Command::Keygen {
            module,
            out,
            verify_keys,
        } => keygen(&module, &out, &verify_keys),
        Command::Sign {
            lib,
            key,
            seq,
            module,
            version,
        } => sign(&lib, &key, seq, module, version),
        Command::Verify { lib, verify_keys } => verify(&lib, &verify_keys),
        Command::Jobs { command } => jobs_cli::jobs(command, load_config),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("modhost: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn init_logging() {
    // lapin logs a broken broker connection three times at ERROR; the AMQP
    // source reports it once, at WARN, with the next attempt's delay. So
    // lapin is quiet unless MODHOST_LOG names it (`...,lapin=debug`).
    let spec = std::env::var("MODHOST_LOG").unwrap_or_else(|_| "info".to_owned());
    let spec = if spec.contains("lapin") {
        spec
    } else {
        format!("{spec},lapin=off")
    };
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

/// The config `--config` names, or ./config.toml, or the embedded defaults.
fn load_config(config_path: Option<PathBuf>) -> anyhow::Result<config::Config> {
    Ok(match config_path {
        Some(path) => config::load(&path)?,
        None if Path::new("config.toml").exists() => config::load(Path::new("config.toml"))?,
        None => {
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            tracing::info!(
                "no config.toml here: running on the embedded defaults (modhost run --config FILE chooses one)"
            );
            config::embedded_default(&cwd)
        }
    })
}

fn run(config_path: Option<PathBuf>, create_admin: Option<String>) -> anyhow::Result<()> {
    init_logging();
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

fn user(command: UserCommand) -> anyhow::Result<()> {
    let open = |arg: ConfigArg| -> anyhow::Result<Store> {
        let config = load_config(arg.config)?;
        if config.auth.accounts.enabled == Some(false) {
            eprintln!(
                "note: [auth.accounts] enabled = false: the host will not use these users until it is enabled"
            );
        }
        Ok(Store::open_in(&config.modules.state_dir)?)
    };
    let stdin_password = || admin::read_password(&mut std::io::stdin().lock());
    match command {
        UserCommand::Add {
            name,
            roles,
            email,
            password_stdin,
            config,
        } => {
            let password = password_stdin.then(stdin_password).transpose()?;
            let store = open(config)?;
            let user = admin::add(&store, &name, email.as_deref(), &roles, password.as_deref())?;
            println!("added {}", admin::list_line(&user));
        }
        UserCommand::List { config } => {
            for user in open(config)?.users()? {
                println!("{}", admin::list_line(&user));
            }
        }
        UserCommand::Disable { name, config } => {
            let user = open(config)?.set_disabled(admin::CLI_ACTOR, &name, true)?;
            println!("{}", admin::list_line(&user));
        }
        UserCommand::Enable { name, config } => {
            let user = open(config)?.set_disabled(admin::CLI_ACTOR, &name, false)?;
            println!("{}", admin::list_line(&user));
        }
        UserCommand::Role {
            name,
            add,
            remove,
            config,
        } => {
            let user = open(config)?.change_roles(admin::CLI_ACTOR, &name, &add, &remove)?;
            println!("{}", admin::list_line(&user));
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            config,
        } => {
            if !password_stdin {
                bail!(
                    "user passwd reads the password from stdin: pass --password-stdin and pipe it in (never on the command line, where ps shows it)"
                );
            }
            let password = stdin_password()?;
            let user = admin::passwd(&open(config)?, &name, &password)?;
            println!(
                "password set; login sessions ended: {}",
                admin::list_line(&user)
            );
        }
    }
    Ok(())
}

fn keygen(module: &str, out: &Path, verify_keys: &Path) -> anyhow::Result<()> {
    let report = tools::keygen(module, out, verify_keys)?;
    println!("{report}");
    Ok(())
}

fn sign(
    lib: &Path,
    key: &Path,
    seq: Option<u64>,
    module: Option<String>,
    version: Option<String>,
) -> anyhow::Result<()> {
    let (module, version, abi) = match (module, version) {
        // Both given: the library is never loaded, so signing an untrusted
        // build runs none of its code. The host checks its ABI at load time.
        (Some(m), Some(v)) => (m, v, modhost_plugin_api::abi::ABI.to_owned()),
        (module, version) => {
            eprintln!(
                "reading the manifest of {}: this loads the library and runs its constructors \
                 (pass --module and --version to sign without loading it)",
                lib.display()
            );
            let (manifest, abi) = modules::inspect(lib).with_context(|| {
                format!(
                    "cannot read the manifest of {} (pass --module and --version)",
                    lib.display()
                )
            })?;
            (
                module.unwrap_or_else(|| manifest.name.to_string()),
                version.unwrap_or_else(|| manifest.version.to_string()),
                abi,
            )
        }
    };
    if abi != modhost_plugin_api::abi::ABI {
        bail!(
            "{} was built for ABI `{abi}` but this modhost speaks `{}`: rebuild it against this modhost-plugin-api",
            lib.display(),
            modhost_plugin_api::abi::ABI
        );
    }
    let seq = seq.unwrap_or_else(tools::default_seq);
    let envelope = tools::sign_file(lib, key, &module, &version, seq, &abi)?;
    println!(
        "signed {} as {} {} seq {} (key {}) → {}.sig",
        lib.display(),
        envelope.module,
        envelope.version,
        envelope.seq,
        envelope.key_id,
        lib.display()
    );
    Ok(())
}

fn verify(lib: &Path, verify_keys: &[PathBuf]) -> anyhow::Result<()> {
    let verified = tools::verify_lib(lib, verify_keys, modhost_plugin_api::abi::ABI)?;
    println!(
        "ok: module {} version {} seq {} key {}",
        verified.module, verified.version, verified.seq, verified.key_id
    );
    Ok(())
}
