//! sapphire-ctl: the admin CLI (user accounts, ACME certificates).

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
    /// ACME certificates (the `[acme]` table of proxy.toml).
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(clap::Args)]
struct CertPaths {
    /// The proxy's configuration file.
    #[arg(long, default_value = sapphire::proxy::config::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Where tls.crt and tls.key are written.
    #[arg(long, default_value = "/etc/sapphire/tls")]
    tls_dir: PathBuf,
    /// The ACME account and the status of the last attempts.
    #[arg(
        long,
        env = "STATE_DIRECTORY",
        default_value = "/var/lib/sapphire-acme"
    )]
    state_dir: PathBuf,
}

#[derive(Subcommand)]
enum CertCommand {
    /// Get or renew the certificate when it is two thirds into its lifetime
    /// (or with --force), then make the proxy reload it.
    Renew {
        #[command(flatten)]
        paths: CertPaths,
        /// Renew now, whatever the certificate's age or the back-off.
        #[arg(long)]
        force: bool,
        /// Send SIGHUP to this process instead of `systemctl reload sapphire-proxy`.
        #[arg(long)]
        proxy_pid: Option<i32>,
    },
    /// Show the certificate in place and the last renewal attempt.
    Status {
        #[command(flatten)]
        paths: CertPaths,
    },
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
        Command::Cert(c) => return cert(c),
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

fn acme_config(config: &std::path::Path) -> Result<Option<sapphire::acme::AcmeConfig>> {
    let file = sapphire::proxy::config::FileConfig::load(config, false)?;
    Ok(file.acme.unwrap_or_default().check()?)
}

fn cert(c: CertCommand) -> Result<()> {
    use sapphire::acme::{self, Outcome};
    let when = |t: i64| {
        let d = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
        humantime_like(d)
    };
    match c {
        CertCommand::Renew {
            paths,
            force,
            proxy_pid,
        } => {
            let Some(cfg) = acme_config(&paths.config)? else {
                println!(
                    "ACME is off: no [acme] domains in {}",
                    paths.config.display()
                );
                return Ok(());
            };
            let p = acme::Paths {
                tls_dir: paths.tls_dir,
                state_dir: paths.state_dir,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match rt.block_on(acme::renew(&cfg, &p, force)) {
                Ok(Outcome::NotDue { renew_at }) => {
                    println!("certificate is good; renewal due {}", when(renew_at))
                }
                Ok(Outcome::BackingOff { next_attempt }) => {
                    println!("last attempt failed; next attempt {}", when(next_attempt))
                }
                Ok(Outcome::Renewed(info)) => {
                    println!(
                        "new certificate for {} from {}, valid until {}",
                        info.names.join(", "),
                        info.issuer,
                        when(info.not_after)
                    );
                    match proxy_pid {
                        Some(pid) => {
                            if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
                                bail!("signalling the proxy: {}", std::io::Error::last_os_error());
                            }
                        }
                        None => {
                            let st = std::process::Command::new("systemctl")
                                .args(["try-reload-or-restart", "sapphire-proxy.service"])
                                .status()
                                .context("running systemctl")?;
                            if !st.success() {
                                bail!("systemctl reload sapphire-proxy failed: {st}");
                            }
                        }
                    }
                }
                Err(e) => {
                    acme::log_failure(&e);
                    // The message already carries its cause (as status.json
                    // keeps it): not repeated by anyhow's chain.
                    bail!("{e}");
                }
            }
        }
        CertCommand::Status { paths } => {
            let cfg = acme_config(&paths.config)?;
            let p = acme::Paths {
                tls_dir: paths.tls_dir,
                state_dir: paths.state_dir,
            };
            match &cfg {
                Some(c) => println!(
                    "acme: {} via {} ({:?})",
                    c.domains.join(", "),
                    c.directory,
                    c.challenge
                ),
                None => println!("acme: off"),
            }
            match acme::CertInfo::read(&p.cert()) {
                Ok(i) => {
                    println!("certificate: {}", p.cert().display());
                    println!("issuer: {}", i.issuer);
                    println!("names: {}", i.names.join(", "));
                    println!("not after: {}", when(i.not_after));
                    println!("renewal due: {}", when(i.renew_at()));
                }
                Err(e) => println!("certificate: {e}"),
            }
            let st = acme::Status::load(&p);
            match st.last_attempt {
                Some(t) => println!("last attempt: {}", when(t)),
                None => println!("last attempt: never"),
            }
            if let Some(t) = st.last_success {
                println!("last success: {}", when(t));
            }
            if let Some(e) = &st.last_error {
                println!("last error: {e}");
                println!("failures in a row: {}", st.failures);
            }
            if let Some(t) = st.next_attempt {
                println!("next attempt not before: {}", when(t));
            }
        }
    }
    Ok(())
}

/// `2026-12-01 23:05:00 UTC` without another dependency.
fn humantime_like(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
