//! The proxy's configuration: command-line flags over `/etc/sapphire/proxy.toml`
//! over built-in defaults. Every key is documented in `docs/proxy.md`
//! (section "Configuration").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/sapphire/proxy.toml";

/// How the proxy reaches users' backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LauncherKind {
    /// Connect to `<backend-dir>/<user>.sock`; systemd socket activation
    /// starts `sapphire-backend@<user>.service` on the first connection.
    Systemd,
    /// Start and supervise one `sapphire-backend` child per user.
    Spawn,
}

/// Command-line flags. Every flag but `--config`, `--demo` and `--port`
/// has a key of the same name (with `_`) in the TOML file.
#[derive(Parser, Debug, Default)]
#[command(name = "sapphire-proxy", version, about = "Sapphire's public TLS edge")]
pub struct Args {
    /// Configuration file (TOML). A missing default file is fine.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (repeatable). Ignored when systemd passes
    /// listening sockets (socket activation).
    #[arg(long)]
    pub listen: Vec<SocketAddr>,
    /// Address for plain HTTP (repeatable): ACME http-01 challenges and a
    /// redirect of everything else to https. None by default. Ignored when
    /// systemd passes listening sockets (sapphire-proxy-http.socket).
    #[arg(long)]
    pub listen_http: Vec<SocketAddr>,
    /// TLS certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Accounts file written by sapphire-ctl.
    #[arg(long, env = "SAPPHIRE_ACCOUNTS")]
    pub accounts: Option<PathBuf>,
    /// Directory for the proxy's own state (session key, generated certificate).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Directory holding the backends' sockets, `<user>.sock`.
    #[arg(long)]
    pub backend_dir: Option<PathBuf>,
    /// How backends are started.
    #[arg(long, value_enum)]
    pub launcher: Option<LauncherKind>,
    /// The sapphire-backend program (spawn launcher).
    #[arg(long)]
    pub backend_bin: Option<PathBuf>,
    /// Where spawned backends keep their state, one directory per user.
    #[arg(long)]
    pub backend_state_dir: Option<PathBuf>,
    /// Origin allowed to open WebSockets (repeatable), e.g. https://chat.example.org.
    /// Default: the origin the request was addressed to (its Host header).
    #[arg(long)]
    pub origin: Vec<String>,
    /// Hours a session stays valid.
    #[arg(long)]
    pub session_hours: Option<u64>,
    /// Most client connections at once; beyond, clients get 503.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Run the local demo: self-signed certificate, a `demo` user, spawned backends.
    #[arg(long)]
    pub demo: bool,
    /// Port of the demo (with --demo).
    #[arg(long, default_value_t = 8443)]
    pub port: u16,
}

/// The TOML file. Unknown keys are an error, so typos do not go unnoticed.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    #[serde(default)]
    pub listen_http: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub accounts: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub backend_dir: Option<PathBuf>,
    pub launcher: Option<LauncherKind>,
    pub backend_bin: Option<PathBuf>,
    pub backend_state_dir: Option<PathBuf>,
    #[serde(default)]
    pub origin: Vec<String>,
    pub session_hours: Option<u64>,
    pub max_connections: Option<usize>,
    pub header_timeout_secs: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub max_connections_per_address: Option<usize>,
    pub handshake_burst_per_address: Option<u32>,
    pub handshakes_per_second_per_address: Option<u32>,
    pub max_frame_bytes: Option<u64>,
    /// `[acme]`: certificates from an ACME CA (see `crate::acme`).
    pub acme: Option<crate::acme::AcmeFile>,
}

/// The resolved configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// Plain HTTP listeners of our own (port 80: http-01 and redirects).
    pub listen_http: Vec<SocketAddr>,
    /// Certificate and key; `None` means "generate a self-signed pair in the
    /// state directory".
    pub tls: Option<(PathBuf, PathBuf)>,
    pub accounts: PathBuf,
    pub state_dir: PathBuf,
    pub backend_dir: PathBuf,
    pub launcher: LauncherKind,
    pub backend_bin: PathBuf,
    pub backend_state_dir: PathBuf,
    pub origins: Vec<String>,
    pub session_ttl: Duration,
    pub max_connections: usize,
    /// Time for the TLS handshake, for each request's headers, and for an
    /// idle keep-alive connection's next request.
    pub header_timeout: Duration,
    /// Time for a request's body, once its headers are in.
    pub request_timeout: Duration,
    /// HTTP connections (not counting open WebSockets) per client address
    /// (IPv6: per /64) at once; more are closed before their TLS handshake.
    pub max_connections_per_address: usize,
    /// New TLS handshakes per client address (IPv6: per /64): a burst, then
    /// this many a second; more are closed before their handshake.
    pub handshake_burst_per_address: u32,
    pub handshakes_per_second_per_address: u32,
    pub max_frame_bytes: u64,
    /// ACME is on: the proxy answers its challenges.
    pub acme: Option<crate::acme::AcmeConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Set by the packaged unit: the directory its `ExecStartPre=+` and
/// `ExecReload=+` helper copies `/etc/sapphire/tls/tls.{crt,key}` into,
/// readable by the proxy, so that a reload reaches a renewed certificate
/// (credentials of `LoadCredential=` are read only at start).
pub const TLS_DIR_ENV: &str = "SAPPHIRE_TLS_DIR";

/// True when systemd started us (socket activation or a service).
pub fn under_systemd() -> bool {
    std::env::var_os("LISTEN_FDS").is_some() || std::env::var_os("INVOCATION_ID").is_some()
}

fn default_backend_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("sapphire-backend")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("sapphire-backend"))
}

/// `dir/name` in the first of `dirs` that has it.
fn first_existing(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.exists())
}

impl FileConfig {
    pub fn load(path: &Path, required: bool) -> Result<FileConfig, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.into(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(FileConfig::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.into(),
                source,
            }),
        }
    }
}

impl Config {
    /// Merges flags over the file over defaults.
    pub fn resolve(args: &Args, file: FileConfig) -> Result<Config, ConfigError> {
        let state_dir = args
            .state_dir
            .clone()
            .or(file.state_dir)
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/sapphire-proxy"));
        // Flag, file, then an admin's own `LoadCredential=` (read at start
        // only), then the packaged unit's runtime copy (re-read on reload).
        let dirs: Vec<PathBuf> = ["CREDENTIALS_DIRECTORY", TLS_DIR_ENV]
            .iter()
            .filter_map(|v| std::env::var_os(v).map(PathBuf::from))
            .collect();
        let cert = args
            .tls_cert
            .clone()
            .or(file.tls_cert)
            .or_else(|| first_existing(&dirs, "tls.crt"));
        let key = args
            .tls_key
            .clone()
            .or(file.tls_key)
            .or_else(|| first_existing(&dirs, "tls.key"));
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "give both a TLS certificate and its key, or neither".into(),
                ))
            }
        };
        let listen = if !args.listen.is_empty() {
            args.listen.clone()
        } else if !file.listen.is_empty() {
            file.listen
        } else {
            vec!["[::]:443".parse().unwrap()]
        };
        let listen_http = if !args.listen_http.is_empty() {
            args.listen_http.clone()
        } else {
            file.listen_http
        };
        let origins: Vec<String> = if !args.origin.is_empty() {
            args.origin.clone()
        } else {
            file.origin
        };
        for o in &origins {
            if !o.starts_with("https://") || o.ends_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "origin {o:?} must look like https://host[:port] (no path, no trailing /)"
                )));
            }
        }
        let session_hours = args.session_hours.or(file.session_hours).unwrap_or(24 * 7);
        if session_hours == 0 {
            return Err(ConfigError::Invalid(
                "session_hours must be at least 1".into(),
            ));
        }
        let max_connections = args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(16_384);
        if max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        let acme = match file.acme {
            Some(a) => a.check().map_err(|e| ConfigError::Invalid(e.to_string()))?,
            None => None,
        };
        Ok(Config {
            acme,
            listen,
            listen_http,
            tls,
            accounts: args
                .accounts
                .clone()
                .or(file.accounts)
                .unwrap_or_else(|| PathBuf::from(crate::accounts::DEFAULT_PATH)),
            backend_dir: args
                .backend_dir
                .clone()
                .or(file.backend_dir)
                .unwrap_or_else(|| PathBuf::from("/run/sapphire/backend")),
            launcher: args
                .launcher
                .or(file.launcher)
                .unwrap_or(if under_systemd() {
                    LauncherKind::Systemd
                } else {
                    LauncherKind::Spawn
                }),
            backend_bin: args
                .backend_bin
                .clone()
                .or(file.backend_bin)
                .unwrap_or_else(default_backend_bin),
            backend_state_dir: args
                .backend_state_dir
                .clone()
                .or(file.backend_state_dir)
                .unwrap_or_else(|| state_dir.join("backends")),
            state_dir,
            origins,
            session_ttl: Duration::from_secs(session_hours * 3600),
            max_connections,
            header_timeout: Duration::from_secs(file.header_timeout_secs.unwrap_or(10).max(1)),
            request_timeout: Duration::from_secs(file.request_timeout_secs.unwrap_or(10).max(1)),
            max_connections_per_address: file.max_connections_per_address.unwrap_or(128).max(1),
            handshake_burst_per_address: file.handshake_burst_per_address.unwrap_or(128).max(1),
            handshakes_per_second_per_address: file
                .handshakes_per_second_per_address
                .unwrap_or(20)
                .max(1),
            max_frame_bytes: file.max_frame_bytes.unwrap_or(16 << 20),
        })
    }

    /// Reads the file named by `--config` (or the default one) and resolves.
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p, true)?,
            None => FileConfig::load(Path::new(DEFAULT_CONFIG), false)?,
        };
        Config::resolve(args, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_apply() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = ["127.0.0.1:9000"]
            accounts = "/srv/a.json"
            state_dir = "/srv/state"
            session_hours = 2
            "#,
        )
        .unwrap();
        let args = Args {
            listen: vec!["127.0.0.1:9443".parse().unwrap()],
            ..Args::default()
        };
        let c = Config::resolve(&args, file).unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:9443".parse().unwrap()]);
        assert_eq!(c.accounts, PathBuf::from("/srv/a.json"));
        assert_eq!(c.backend_state_dir, PathBuf::from("/srv/state/backends"));
        assert_eq!(c.session_ttl, Duration::from_secs(7200));
        assert_eq!(c.backend_dir, PathBuf::from("/run/sapphire/backend"));
    }

    #[test]
    fn tls_files_come_from_the_first_directory_that_has_them() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("tls.crt"), "b").unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(
            first_existing(&dirs, "tls.crt"),
            Some(b.path().join("tls.crt"))
        );
        std::fs::write(a.path().join("tls.crt"), "a").unwrap();
        assert_eq!(
            first_existing(&dirs, "tls.crt"),
            Some(a.path().join("tls.crt"))
        );
        assert_eq!(first_existing(&dirs, "tls.key"), None);
    }

    #[test]
    fn listen_http_is_read_from_the_file() {
        let file: FileConfig = toml::from_str(r#"listen_http = ["127.0.0.1:8080"]"#).unwrap();
        let c = Config::resolve(&Args::default(), file).unwrap();
        assert_eq!(c.listen_http, vec!["127.0.0.1:8080".parse().unwrap()]);
        let c = Config::resolve(&Args::default(), FileConfig::default()).unwrap();
        assert!(c.listen_http.is_empty(), "port 80 is opt-in");
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(toml::from_str::<FileConfig>("lisen = []").is_err());
        let half = Args {
            tls_cert: Some("/x.crt".into()),
            ..Args::default()
        };
        assert!(Config::resolve(&half, FileConfig::default()).is_err());
        let bad_origin = Args {
            origin: vec!["https://x/".into()],
            ..Args::default()
        };
        assert!(Config::resolve(&bad_origin, FileConfig::default()).is_err());
    }
}
