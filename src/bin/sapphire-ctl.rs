//! sapphire-ctl: the admin CLI (user accounts).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use sapphire::accounts::{self, Accounts};
use sapphire::username::Username;

#[derive(Parser)]
#[command(name = "sapphire-ctl", version, about = "Administer Sapphire")]
struct Cli {
    /// The accounts file.
    #[arg(long, global = true, env = "SAPPHIRE_ACCOUNTS", default_value = accounts::DEFAULT_PATH)]
    accounts: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage Sapphire users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. Prompts for the password twice on a terminal.
    Add {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password; their open sessions stop working.
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user; their sessions stop working.
    Del {
        name: String,
        /// Also remove the user's backend state (history, IM accounts).
        #[arg(long)]
        purge: bool,
    },
    /// List users (name and state).
    List,
    /// Disable a user: they cannot sign in and their sessions stop working.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sapphire-ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn username(name: &str) -> Result<Username> {
    Username::parse(name).with_context(|| format!("invalid user name {name:?}"))
}

fn run(cli: Cli) -> Result<()> {
    let path = cli.accounts.as_path();
    match cli.command {
        Command::User(UserCommand::Add {
            name,
            password_stdin,
        }) => {
            let user = username(&name)?;
            if Accounts::load(path)?.get(&user).is_some() {
                bail!("user {user} already exists");
            }
            let password = read_password(password_stdin)?;
            Accounts::update(path, |a| a.add(user.clone(), &password))?;
            eprintln!("added user {user}");
            units(path, || sapphire::units::on_user_added(&user))?;
        }
        Command::User(UserCommand::Passwd {
            name,
            password_stdin,
        }) => {
            let user = username(&name)?;
            if Accounts::load(path)?.get(&user).is_none() {
                bail!("no such user: {user}");
            }
            let password = read_password(password_stdin)?;
            Accounts::update(path, |a| a.set_password(&user, &password))?;
            eprintln!("changed the password of {user}");
        }
        Command::User(UserCommand::Del { name, purge }) => {
            let user = username(&name)?;
            Accounts::update(path, |a| a.remove(&user))?;
            eprintln!("deleted user {user}");
            units(path, || sapphire::units::on_user_deleted(&user, purge))?;
        }
        Command::User(UserCommand::List) => {
            for (user, account) in Accounts::load(path)?.users {
                let state = if account.disabled {
                    "disabled"
                } else {
                    "enabled"
                };
                println!("{user}\t{state}");
            }
        }
        Command::User(UserCommand::Disable { name }) => {
            let user = username(&name)?;
            Accounts::update(path, |a| a.set_disabled(&user, true))?;
            eprintln!("disabled user {user}");
            units(path, || sapphire::units::on_user_deleted(&user, false))?;
        }
        Command::User(UserCommand::Enable { name }) => {
            let user = username(&name)?;
            Accounts::update(path, |a| a.set_disabled(&user, false))?;
            eprintln!("enabled user {user}");
            units(path, || sapphire::units::on_user_added(&user))?;
        }
    }
    Ok(())
}

/// Applies a change to the user's systemd units when `path` is the system
/// accounts file on a systemd host (see `sapphire::units`).
fn units(
    path: &std::path::Path,
    change: impl FnOnce() -> Result<(), sapphire::units::UnitsError>,
) -> Result<()> {
    match sapphire::units::should_manage(path) {
        sapphire::units::Decision::Manage => change().context("updating the user's systemd units"),
        sapphire::units::Decision::Skip(_) => Ok(()),
    }
}

/// Reads a new password: one line from stdin with `--password-stdin`,
/// otherwise two prompts without echo on the terminal.
fn read_password(from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("standard input is not a terminal: use --password-stdin to pipe a password");
        }
        let first = rpassword::prompt_password("New password: ")?;
        accounts::check_password_shape(&first)?;
        let second = rpassword::prompt_password("Repeat the password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        first
    };
    accounts::check_password_shape(&password)?;
    Ok(password)
}
