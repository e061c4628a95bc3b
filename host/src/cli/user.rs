//! `modhost user …`: the account store's users, over
//! `modhost::accounts::admin`. Passwords come from stdin, never from the
//! command line, where `ps` would show them.

use anyhow::bail;
use clap::Subcommand;
use modhost::accounts::{Store, admin};

use super::{ConfigArg, load_config};

/// `modhost user …`. Each takes `--config` to find `[modules] state_dir`.
#[derive(Subcommand)]
pub(crate) enum UserCommand {
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

/// Runs one `modhost user` command.
pub(crate) fn user(command: UserCommand) -> anyhow::Result<()> {
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
