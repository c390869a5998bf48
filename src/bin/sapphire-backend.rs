//! sapphire-backend: one user's libpurple daemon behind a WebSocket on a
//! Unix socket. See docs/protocol.md.
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use sapphire::backend::{self, Config, Listen};

#[derive(Parser)]
#[command(
    version,
    about = "Per-user libpurple daemon behind a WebSocket on a Unix socket"
)]
struct Args {
    /// Unix socket to listen on (default: the socket passed by systemd).
    #[arg(long)]
    listen: Option<PathBuf>,
    /// Directory for history, libpurple's files and the rest of the state.
    #[arg(long, env = "STATE_DIRECTORY")]
    state_dir: PathBuf,
    /// Configuration file (default: `$CREDENTIALS_DIRECTORY/backend.toml`,
    /// then /etc/sapphire/backend.toml if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Accept Web Push endpoints on loopback and private networks (for
    /// tests only: otherwise a subscription could aim the backend at
    /// services inside the host or its network).
    #[arg(long)]
    push_allow_private_endpoints: bool,
    /// Also trust the PEM certificates in FILE for push services, besides
    /// the system's CA store (for tests with a private push service).
    #[arg(long, value_name = "FILE")]
    push_ca: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // History and libpurple's files (with IM passwords) are for this user
    // only, whatever the caller's umask.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o077) };
    // systemd may pass several directories separated by ':'.
    let state_dir = match args.state_dir.to_str() {
        Some(s) if s.contains(':') => PathBuf::from(s.split(':').next().unwrap_or(s)),
        _ => args.state_dir.clone(),
    };
    let state_dir = std::path::absolute(&state_dir).context("state directory")?;
    // Before any thread exists (this sets environment variables).
    backend::prepare_env(&state_dir).context("preparing the state directory")?;
    sapphire::logging::init();

    let listen = match args.listen {
        Some(path) => Listen::Path(path),
        None => {
            let mut fds = listenfd::ListenFd::from_env();
            match fds.take_unix_listener(0).context("LISTEN_FDS")? {
                Some(l) => Listen::Inherited(l),
                None => bail!("no --listen PATH and no socket passed by systemd (LISTEN_FDS)"),
            }
        }
    };
    let settings = backend::config::BackendConfig::load(args.config.as_deref())?;
    backend::push::allow_private_endpoints(args.push_allow_private_endpoints);
    if let Some(path) = &args.push_ca {
        backend::push::load_push_ca(path)?;
    }
    let listen = backend::bind(listen)?;
    // Before any thread exists (Landlock confines this thread and the ones
    // it starts).
    backend::confine(&settings, &state_dir, &listen);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(backend::run(Config {
        listen,
        state_dir,
        settings,
    }))?;
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}
