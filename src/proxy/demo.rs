//! `sapphire-proxy --demo`: a local demo in one command. Everything lives
//! in one state directory (default `./sapphire-demo/`): a self-signed
//! certificate, an accounts file with the user `demo` and a random password
//! (kept in `demo-password` so a second run prints the same one), the
//! backends' sockets and state. It listens on 127.0.0.1 only and supervises
//! the backends itself (spawn launcher).

use std::path::{Path, PathBuf};

use rand::distributions::{Alphanumeric, DistString};

use super::config::{Args, Config, FileConfig, LauncherKind};
use super::error::{io_err, ProxyError};
use crate::accounts::{self, Accounts};
use crate::fsutil::atomic_write;
use crate::username::Username;

pub const DEMO_USER: &str = "demo";

pub struct Demo {
    pub config: Config,
    pub password: String,
}

fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// Prepares the demo's state directory and the configuration to run it.
pub fn prepare(args: &Args) -> Result<Demo, ProxyError> {
    let io = |what: &str| io_err(what.to_string());
    let dir = absolute(
        args.state_dir
            .as_deref()
            .unwrap_or(Path::new("sapphire-demo")),
    )
    .map_err(io("current directory"))?;
    std::fs::create_dir_all(&dir).map_err(io("creating the demo directory"))?;
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    crate::tls::ensure_self_signed(&cert, &key, &["localhost".into(), "127.0.0.1".into()])?;

    let accounts_path = dir.join("accounts.json");
    let password_path = dir.join("demo-password");
    let user = Username::parse(DEMO_USER).expect("valid");
    let saved = std::fs::read_to_string(&password_path)
        .ok()
        .map(|s| s.trim().to_owned());
    let current = Accounts::load(&accounts_path)?;
    let password = match (saved, current.get(&user)) {
        (Some(pw), Some(acc)) if accounts::verify_password(&acc.hash, &pw) => pw,
        (_, existing) => {
            let pw = Alphanumeric.sample_string(&mut rand::rngs::OsRng, 20);
            let exists = existing.is_some();
            Accounts::update(&accounts_path, |a| {
                if exists {
                    a.set_password(&user, &pw)?;
                    a.set_disabled(&user, false)
                } else {
                    a.add(user.clone(), &pw)
                }
            })?;
            atomic_write(&password_path, format!("{pw}\n").as_bytes(), 0o600)
                .map_err(io("saving the demo password"))?;
            pw
        }
    };

    let demo_args = Args {
        listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], args.port))],
        tls_cert: Some(cert),
        tls_key: Some(key),
        accounts: Some(accounts_path),
        state_dir: Some(dir.clone()),
        backend_dir: Some(dir.join("run")),
        launcher: Some(LauncherKind::Spawn),
        backend_bin: args.backend_bin.clone(),
        backend_state_dir: Some(dir.join("backends")),
        ..Args::default()
    };
    let config = Config::resolve(&demo_args, FileConfig::default())?;
    Ok(Demo { config, password })
}
