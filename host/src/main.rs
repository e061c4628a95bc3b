//! The `modhost` command: run the host, the module tools, the user store.
//!
//! # Layout
//! - this file: the command line (clap) and the dispatch to `cli`
//! - `cli`: one file per command group (see `cli/mod.rs`)

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use cli::{ConfigArg, user::UserCommand};

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
    ///
    /// Serves websockets (/ws/), /trigger/, /health and the admin API on
    /// [server] listen, and loads the signed modules in [modules] dir. It
    /// watches that folder (a signed build dropped there is loaded, swapped
    /// in or removed without a restart), the verify key folders, and the
    /// config file itself (most settings apply on save; the log says which
    /// need a restart).
    ///
    /// Logs go to stdout. MODHOST_LOG picks the lines, in tracing's
    /// EnvFilter syntax (info, the default; debug; warn,modhost=debug), and
    /// [log] format their shape: "text" (coloured only on a terminal) or
    /// "json" (one object per line). SIGINT or SIGTERM stop it gracefully.
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
    /// Write a self-signed certificate and key (cert.pem, key.pem with
    /// mode 0600) for trying `[server] tls`. Existing files are kept.
    DevCert {
        /// Folder to write them into.
        #[arg(long, default_value = "tls")]
        out: PathBuf,
        /// Extra host names or addresses the certificate is for (localhost
        /// and 127.0.0.1 are always in it).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
    },
    /// Create a signing key for a module and trust its public key.
    Keygen {
        /// Module name the key signs for.
        module: String,
        /// Folder for the private key (`<module>.key`, mode 0600).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Folder whose `<module>.pub` gets the public key appended.
        /// Default: the first of the config's `[modules] verify_keys`.
        #[arg(long)]
        verify_keys: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
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
        /// The config whose `[modules] verify_keys` should trust the key
        /// (a warning otherwise).
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check a module library as the host on this config would: signature,
    /// ABI, `enabled`, rollback guard, layout and manifest. Loads the
    /// library (runs its constructors) once its signature checks out.
    Verify {
        /// The `.so` to check.
        lib: PathBuf,
        /// Folder(s) of `<module>.pub` files. Default: the config's
        /// `[modules] verify_keys`.
        #[arg(long)]
        verify_keys: Vec<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Make a new module crate (cdylib + rlib) that builds and tests out of
    /// the box.
    New {
        /// The module's name: a-z, 0-9, '_' and '-', starting with a letter.
        name: String,
        /// The folder to create. Default: ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// In a module's crate: build it in release, check it, sign it and drop
    /// `<module>.so` and its `.sig` into the config's modules folder.
    Package {
        /// The host's config file (its `[modules] dir` receives the build).
        /// Without it, ./config.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The module's private key. Default: ./<module>.key.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Rollback guard. Default: Unix time, or one above the highest the
        /// host accepted when that is higher.
        #[arg(long)]
        seq: Option<u64>,
    },
    /// A running host's modules (with every file it refused and why),
    /// connections and rooms, from its admin API with the config's
    /// `[admin] token`.
    Status {
        /// The running host's config file (its listen address and admin
        /// token). Without it, ./config.toml, or the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The host's address, when not the config's listen address
        /// (e.g. behind a proxy): http://host:port.
        #[arg(long)]
        url: Option<String>,
    },
    /// Launch, list, stop jobs and read their logs on a running host.
    Jobs {
        #[command(subcommand)]
        command: cli::jobs::JobsCommand,
    },
}

fn main() -> std::process::ExitCode {
    // reqwest is built with `rustls-no-provider`: the host hands its own
    // clients a ring config, and the CLI's plain clients (`status`, `jobs`)
    // need a process-wide default, or building one panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            create_admin,
        } => cli::run::run(config, create_admin),
        Command::User { command } => cli::user::user(command),
        Command::DevCert { out, names } => cli::dev_cert::dev_cert(&out, &names),
        Command::Keygen {
            module,
            out,
            verify_keys,
            config,
        } => cli::signing::keygen(&module, &out, verify_keys, config.config),
        Command::Sign {
            lib,
            key,
            seq,
            module,
            version,
            config,
        } => cli::signing::sign(&lib, &key, seq, module, version, config.config),
        Command::Verify {
            lib,
            verify_keys,
            config,
        } => cli::signing::verify(&lib, verify_keys, config.config),
        Command::New { name, dir } => cli::new::new(&name, dir),
        Command::Package { config, key, seq } => cli::package::package(config, key, seq),
        Command::Status { config, url } => cli::status::status(config, url),
        Command::Jobs { command } => cli::jobs::jobs(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("modhost: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}
