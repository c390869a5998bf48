//! The backend confines itself with Landlock before libpurple starts.
//!
//! # What it allows
//! * its state directory: everything but running programs;
//! * `/dev/null`: read and write;
//! * the system's files (`/usr`, `/etc`, `/lib*`, `/proc`, `/sys`, `/dev`,
//!   `/run/systemd/resolve`, `/var/lib/ca-certificates`…): read only;
//! * running programs: **nowhere**. No libpurple plugin has a reason to
//!   `execve` in a web chat backend, and one that was told to (zephyr's
//!   `tzc_command`) now fails even if an option slipped past
//!   [`super::policy`].
//!
//! Everything else (the proxy's `session.key` and TLS key, other users'
//! state directories, home directories) can be neither read nor written.
//! This matters most in spawn mode, where every backend runs as the
//! proxy's own Unix user; under systemd each backend is a `DynamicUser` in
//! its own mount namespace already, and Landlock adds the no-exec rule.
//!
//! # What it does not cover (documented in `docs/deploy.md`)
//! Landlock does not govern `connect()` to a Unix socket by path: in spawn
//! mode a backend could still reach another user's backend socket if it
//! knows where it is, unless the proxy runs as root and gives each backend
//! its own uid. With `--listen PATH` the socket's directory also keeps the
//! right to remove files (the backend removes its socket at exit), so in
//! spawn mode a backend could delete another user's socket file (that
//! user's next connection then restarts their backend; nothing is read or
//! written). Network access is not restricted (IM servers are anywhere).
//!
//! The sandbox is applied after the socket is bound and the store opened,
//! and before libpurple starts. On a kernel without Landlock (before 5.13,
//! or disabled) or where a seccomp filter refuses its system calls, the
//! backend logs a warning and runs without it.

use std::path::Path;

use landlock::{
    Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    ABI,
};

/// System directories readable by the backend (missing ones are skipped).
///
/// Not `/run` as a whole: it holds systemd's credentials directories (a
/// spawn-mode proxy run by systemd keeps its TLS key there, readable by its
/// own uid, which its backends share); only where `/etc/resolv.conf` may
/// point.
const READ_ONLY: &[&str] = &[
    "/usr",
    "/etc",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/proc",
    "/sys",
    "/dev",
    "/run/systemd/resolve",
    "/run/resolvconf",
    "/var/lib/ca-certificates",
    "/var/lib/dbus",
    "/var/cache/fontconfig",
];

/// How the sandbox came out.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every rule is enforced.
    Full,
    /// The kernel enforces part of the rules (older Landlock ABI).
    Partial,
    /// Not enforced (no Landlock, or its system calls are filtered).
    None(String),
}

#[derive(Debug, thiserror::Error)]
#[error("landlock: {0}")]
pub struct SandboxError(String);

/// Confines this process (all its threads, which is why it runs before
/// libpurple's thread starts) as described in the module documentation.
///
/// `socket`: the `--listen` socket file, which the backend removes at exit:
/// its directory gets the right to remove files (only that).
pub fn confine(state_dir: &Path, socket: Option<&Path>) -> Outcome {
    match try_confine(state_dir, socket) {
        Ok(RulesetStatus::FullyEnforced) => Outcome::Full,
        Ok(RulesetStatus::PartiallyEnforced) => Outcome::Partial,
        Ok(RulesetStatus::NotEnforced) => Outcome::None("not supported by this kernel".into()),
        Err(e) => Outcome::None(e.to_string()),
    }
}

fn try_confine(state_dir: &Path, socket: Option<&Path>) -> Result<RulesetStatus, SandboxError> {
    let err = |e: &dyn std::fmt::Display| SandboxError(e.to_string());
    let abi = ABI::V5;
    let all = AccessFs::from_all(abi);
    let no_exec = all & !AccessFs::Execute;
    let read = AccessFs::from_read(abi) & !AccessFs::Execute;
    let mut ruleset = Ruleset::default()
        .handle_access(all)
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))?;
    let state = PathFd::new(state_dir).map_err(|e| err(&e))?;
    ruleset = ruleset
        .add_rule(PathBeneath::new(state, no_exec))
        .map_err(|e| err(&e))?;
    for dir in READ_ONLY {
        if let Ok(fd) = PathFd::new(dir) {
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, read))
                .map_err(|e| err(&e))?;
        }
    }
    if let Ok(fd) = PathFd::new("/dev/null") {
        let rw = AccessFs::ReadFile | AccessFs::WriteFile;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, rw))
            .map_err(|e| err(&e))?;
    }
    if let Some(dir) = socket.and_then(Path::parent) {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let fd = PathFd::new(dir).map_err(|e| err(&e))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, AccessFs::RemoveFile))
            .map_err(|e| err(&e))?;
    }
    let status = ruleset.restrict_self().map_err(|e| err(&e))?;
    Ok(status.ruleset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Landlock confines the calling thread: run it on a thread of its own
    /// so that the other tests are not confined.
    #[test]
    fn confined_thread_keeps_its_state_and_loses_the_rest() {
        let state = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("session.key");
        std::fs::write(&secret, "key").unwrap();
        let state_path = state.path().to_owned();
        let result = std::thread::spawn(move || {
            let outcome = confine(&state_path, None);
            let own = std::fs::write(state_path.join("db"), "x")
                .and_then(|()| std::fs::read_to_string(state_path.join("db")));
            let stolen = std::fs::read_to_string(&secret);
            let written = std::fs::write(secret.with_file_name("planted"), "x");
            let system = std::fs::read_to_string("/etc/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/os-release"));
            let exec = std::process::Command::new("/bin/true").status();
            (
                outcome,
                own.is_ok(),
                stolen.is_err(),
                written.is_err(),
                system.is_ok(),
                exec.is_err(),
            )
        })
        .join()
        .unwrap();
        // Debian 12's kernel and the CI machines have Landlock: its absence
        // is a failure here, not a skip.
        assert_eq!(result.0, Outcome::Full);
        assert!(result.1, "the state directory must stay usable");
        assert!(result.2, "read a file outside the state directory");
        assert!(result.3, "wrote a file outside the state directory");
        assert!(result.4, "system files must stay readable");
        assert!(result.5, "ran a program");
    }
}
