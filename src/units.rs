//! A Sapphire user's systemd units, as `sapphire-ctl` manages them.
//!
//! Under systemd, each user `NAME` has a socket unit
//! `sapphire-backend@NAME.socket` (listening on
//! `/run/sapphire/backend/NAME.sock`, connectable by the proxy only) whose
//! first connection starts `sapphire-backend@NAME.service`. The socket exists
//! because `sapphire-ctl user add` enables it: the proxy itself can start no
//! unit, only connect to sockets the administrator created (see
//! `docs/deploy.md`, "Why ctl enables the user's socket").
//!
//! | ctl command            | units                                              |
//! |------------------------|----------------------------------------------------|
//! | `user add NAME`        | `systemctl enable --now sapphire-backend@NAME.socket` |
//! | `user enable NAME`     | same as add                                        |
//! | `user disable NAME`    | disable and stop the socket, stop the backend      |
//! | `user del NAME`        | same as disable                                    |
//! | `user del NAME --purge`| also `systemctl clean --what=state` (history, IM state) |
//!
//! Nothing is done unless [`should_manage`] says so: the accounts file must
//! be the system one (`/etc/sapphire/accounts.json`), the host booted with
//! systemd and the Sapphire units installed. `SAPPHIRE_MANAGE_UNITS=1`
//! forces it (another accounts path), `SAPPHIRE_MANAGE_UNITS=0` turns it off.
//! So tests and demos that use their own accounts file never touch the
//! host's units.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::username::Username;

/// The accounts file whose users are the system's Sapphire users.
pub const SYSTEM_ACCOUNTS: &str = "/etc/sapphire/accounts.json";
/// Environment override: `1` always manages units, `0` never does.
pub const MANAGE_ENV: &str = "SAPPHIRE_MANAGE_UNITS";
const TEMPLATE: &str = "sapphire-backend@.socket";
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
];

/// Why the units were or were not touched; printable for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Manage,
    Skip(&'static str),
}

/// A systemctl call that failed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {reason}")]
pub struct UnitsError {
    pub command: String,
    pub reason: String,
}

/// Whether `sapphire-ctl` working on `accounts` should manage systemd units.
pub fn should_manage(accounts: &Path) -> Decision {
    decide(
        accounts,
        std::env::var_os(MANAGE_ENV).as_deref(),
        Path::new("/"),
    )
}

fn decide(accounts: &Path, env: Option<&OsStr>, root: &Path) -> Decision {
    match env.and_then(OsStr::to_str) {
        Some("0") => return Decision::Skip("SAPPHIRE_MANAGE_UNITS=0"),
        Some("1") => return Decision::Manage,
        _ => {}
    }
    if absolute(accounts) != Path::new(SYSTEM_ACCOUNTS) {
        return Decision::Skip("not the system accounts file");
    }
    if !root.join("run/systemd/system").is_dir() {
        return Decision::Skip("the host is not running systemd");
    }
    if !UNIT_DIRS
        .iter()
        .any(|d| root.join(d).join(TEMPLATE).exists())
    {
        return Decision::Skip("the Sapphire systemd units are not installed");
    }
    Decision::Manage
}

fn absolute(p: &Path) -> PathBuf {
    // The file may not exist yet: resolve its directory only.
    let (dir, name) = match (p.parent(), p.file_name()) {
        (Some(d), Some(n)) => (
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            },
            n,
        ),
        _ => return p.to_path_buf(),
    };
    match dir.canonicalize() {
        Ok(d) => d.join(name),
        Err(_) => p.to_path_buf(),
    }
}

/// The units of one user.
pub fn socket_unit(user: &Username) -> String {
    format!("sapphire-backend@{user}.socket")
}

pub fn service_unit(user: &Username) -> String {
    format!("sapphire-backend@{user}.service")
}

/// One systemctl invocation (arguments after `systemctl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step(pub Vec<String>);

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "systemctl {}", self.0.join(" "))
    }
}

fn step(args: &[&str]) -> Step {
    Step(args.iter().map(|s| s.to_string()).collect())
}

/// `user add` and `user enable`: the socket listens now and at every boot.
pub fn plan_user_added(user: &Username) -> Vec<Step> {
    vec![step(&["enable", "--now", &socket_unit(user)])]
}

/// `user disable`, and `user del` (with `purge`: also the state directory,
/// which holds the message history and the user's IM accounts).
pub fn plan_user_removed(user: &Username, purge: bool) -> Vec<Step> {
    let (socket, service) = (socket_unit(user), service_unit(user));
    // Socket first, so that no new connection restarts the service.
    let mut steps = vec![
        step(&["disable", "--now", &socket]),
        step(&["stop", &service]),
    ];
    if purge {
        steps.push(step(&["clean", "--what=state", &service]));
    }
    steps
}

fn run(steps: &[Step]) -> Result<(), UnitsError> {
    for s in steps {
        let out = Command::new("systemctl")
            .args(&s.0)
            .output()
            .map_err(|e| UnitsError {
                command: s.to_string(),
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(UnitsError {
                command: s.to_string(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }
    Ok(())
}

/// After `user add NAME` (and `user enable NAME`) succeeded.
pub fn on_user_added(user: &Username) -> Result<(), UnitsError> {
    run(&plan_user_added(user))
}

/// After `user del NAME [--purge]` (and, with `purge = false`,
/// `user disable NAME`) succeeded.
pub fn on_user_deleted(user: &Username, purge: bool) -> Result<(), UnitsError> {
    run(&plan_user_removed(user, purge))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    #[test]
    fn plans_name_the_user_units() {
        assert_eq!(
            plan_user_added(&u("alice"))
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["systemctl enable --now sapphire-backend@alice.socket"]
        );
        let del: Vec<_> = plan_user_removed(&u("bob-2"), true)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            del,
            [
                "systemctl disable --now sapphire-backend@bob-2.socket",
                "systemctl stop sapphire-backend@bob-2.service",
                "systemctl clean --what=state sapphire-backend@bob-2.service",
            ]
        );
        assert_eq!(plan_user_removed(&u("bob"), false).len(), 2);
    }

    #[test]
    fn manages_only_the_system_accounts_on_systemd_with_units() {
        let root = tempfile::tempdir().unwrap();
        let sys = Path::new(SYSTEM_ACCOUNTS);
        let r = root.path();
        assert!(matches!(decide(sys, None, r), Decision::Skip(_)));
        std::fs::create_dir_all(r.join("run/systemd/system")).unwrap();
        assert_eq!(
            decide(sys, None, r),
            Decision::Skip("the Sapphire systemd units are not installed")
        );
        std::fs::create_dir_all(r.join("lib/systemd/system")).unwrap();
        std::fs::write(r.join("lib/systemd/system").join(TEMPLATE), "").unwrap();
        assert_eq!(decide(sys, None, r), Decision::Manage);
        let other = r.join("accounts.json");
        assert_eq!(
            decide(&other, None, r),
            Decision::Skip("not the system accounts file")
        );
        assert_eq!(decide(&other, Some(OsStr::new("1")), r), Decision::Manage);
        assert!(matches!(
            decide(sys, Some(OsStr::new("0")), r),
            Decision::Skip(_)
        ));
    }
}
