//! Starting and measuring the processes a benchmark needs: the echo server
//! (the backend's stand-in for relay figures), sapphire-proxy, nginx,
//! ngircd and real sapphire-backend instances. Everything is on loopback,
//! in a temporary directory, and is stopped when dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub const PROXY: &str = env!("CARGO_BIN_EXE_sapphire-proxy");
pub const CTL: &str = env!("CARGO_BIN_EXE_sapphire-ctl");
pub const BACKEND: &str = env!("CARGO_BIN_EXE_sapphire-backend");
pub const NGINX: &str = "/usr/sbin/nginx";
pub const NGIRCD: &str = "/usr/sbin/ngircd";

/// A child process: SIGTERM when dropped, SIGKILL if it lingers.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` every 10 ms until it holds, the child exits, or `limit`.
fn wait_until(
    what: &str,
    proc: &mut Proc,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if ready() {
            return Ok(());
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!("{what} exited early: {status}");
        }
        if Instant::now() > deadline {
            bail!("{what} not ready after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tcp_ready(port: u16) -> impl FnMut() -> bool {
    move || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn unix_ready(path: &Path) -> impl FnMut() -> bool + '_ {
    move || std::os::unix::net::UnixStream::connect(path).is_ok()
}

fn log_file(dir: &Path, name: &str) -> Result<Stdio> {
    Ok(std::fs::File::create(dir.join(name))?.into())
}

/// A self-signed certificate for `localhost`, shared by the proxy and nginx.
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: rustls_pki_types::CertificateDer<'static>,
}

pub fn make_cert(dir: &Path) -> Result<Cert> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let cert = dir.join("bench.crt");
    let key = dir.join("bench.key");
    std::fs::write(&cert, ck.cert.pem())?;
    std::fs::write(&key, ck.key_pair.serialize_pem())?;
    Ok(Cert {
        cert,
        key,
        der: ck.cert.der().clone(),
    })
}

/// The bench's own WebSocket echo server (this binary, `echo-server PATH`).
pub fn start_echo(dir: &Path) -> Result<(Proc, PathBuf)> {
    let sock = dir.join("echo.sock");
    let child = Command::new(std::env::current_exe()?)
        .arg("echo-server")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(log_file(dir, "echo.log")?)
        .spawn()
        .context("starting the echo server")?;
    let mut p = Proc { child };
    wait_until(
        "echo server",
        &mut p,
        Duration::from_secs(10),
        unix_ready(&sock),
    )?;
    Ok((p, sock))
}

/// Adds a user to an accounts file with sapphire-ctl.
pub fn add_user(accounts: &Path, name: &str, password: &str) -> Result<()> {
    let mut child = Command::new(CTL)
        .arg("--accounts")
        .arg(accounts)
        .args(["user", "add", name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("sapphire-ctl")?;
    writeln!(child.stdin.take().unwrap(), "{password}")?;
    let st = child.wait()?;
    if !st.success() {
        bail!("sapphire-ctl user add {name}: {st}");
    }
    Ok(())
}

pub enum Backends<'a> {
    /// Connect to `<dir>/<user>.sock`, started by someone else (the bench).
    Existing(&'a Path),
    /// Let the proxy spawn real sapphire-backend processes.
    Spawn,
}

/// A sapphire-proxy on 127.0.0.1:`port` with its own state in `dir`.
pub fn start_proxy(
    dir: &Path,
    cert: &Cert,
    accounts: &Path,
    port: u16,
    backends: Backends,
) -> Result<Proc> {
    let state = dir.join("proxy-state");
    std::fs::create_dir_all(&state)?;
    let mut cmd = Command::new(PROXY);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
    if crate::netns::v6_ready() {
        cmd.args(["--listen", &format!("[{}]:{port}", crate::netns::V6_SERVER)]);
    }
    cmd.arg("--tls-cert")
        .arg(&cert.cert)
        .arg("--tls-key")
        .arg(&cert.key)
        .arg("--accounts")
        .arg(accounts)
        .arg("--state-dir")
        .arg(&state)
        .arg("--max-connections")
        .arg("30000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log_file(dir, &format!("proxy-{port}.log"))?);
    match backends {
        Backends::Existing(d) => {
            cmd.args(["--launcher", "systemd"])
                .arg("--backend-dir")
                .arg(d);
        }
        Backends::Spawn => {
            let run = dir.join("backend-run");
            std::fs::create_dir_all(&run)?;
            cmd.args(["--launcher", "spawn"])
                .arg("--backend-bin")
                .arg(BACKEND)
                .arg("--backend-dir")
                .arg(&run)
                .arg("--backend-state-dir")
                .arg(dir.join("backend-state"));
        }
    }
    let mut p = Proc {
        child: cmd.spawn().context("starting sapphire-proxy")?,
    };
    wait_until(
        "sapphire-proxy",
        &mut p,
        Duration::from_secs(15),
        tcp_ready(port),
    )?;
    Ok(p)
}

pub fn nginx_installed() -> bool {
    Path::new(NGINX).exists()
}

/// Debian's nginx as a TLS WebSocket reverse proxy to the Unix socket
/// `upstream`, with the same certificate and TLS 1.3 only.
pub fn start_nginx(dir: &Path, cert: &Cert, port: u16, upstream: &Path) -> Result<Proc> {
    let d = dir.join(format!("nginx-{port}"));
    std::fs::create_dir_all(d.join("tmp"))?;
    let conf = d.join("nginx.conf");
    let p = d.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process on;\nuser root;\nworker_processes auto;\n\
             worker_rlimit_nofile 65536;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
             events {{ worker_connections 32768; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {p}/tmp/body; proxy_temp_path {p}/tmp/proxy;\n\
               fastcgi_temp_path {p}/tmp/fcgi; uwsgi_temp_path {p}/tmp/uwsgi; scgi_temp_path {p}/tmp/scgi;\n\
               upstream sapphire_backend {{ server unix:{up}; }}\n\
               server {{\n    listen 127.0.0.1:{port} ssl;\n\
                 ssl_certificate {crt};\n    ssl_certificate_key {key};\n\
                 ssl_protocols TLSv1.3;\n\
                 location /ws {{\n      proxy_pass http://sapphire_backend;\n\
                   proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n\
                   proxy_set_header Connection \"upgrade\";\n      proxy_read_timeout 3600s;\n\
                   proxy_send_timeout 3600s;\n    }}\n  }}\n}}\n",
            up = upstream.display(),
            crt = cert.cert.display(),
            key = cert.key.display(),
        ),
    )?;
    let child = Command::new(NGINX)
        .arg("-e")
        .arg(d.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log_file(&d, "stderr.log")?)
        .spawn()
        .context("starting nginx")?;
    let mut proc = Proc { child };
    wait_until("nginx", &mut proc, Duration::from_secs(10), tcp_ready(port))?;
    Ok(proc)
}

/// A private ngircd on `port`.
pub fn start_ngircd(dir: &Path, port: u16) -> Result<Proc> {
    let d = dir.join("ngircd");
    std::fs::create_dir_all(&d)?;
    let motd = d.join("motd");
    std::fs::write(&motd, "bench\n")?;
    let conf = d.join("ngircd.conf");
    std::fs::write(
        &conf,
        format!(
            "[Global]\nName = irc.bench\nInfo = Sapphire bench\nListen = 127.0.0.1\n\
             Ports = {port}\nMotdFile = {}\nPidFile = {}\n\
             [Limits]\nMaxConnectionsIP = 0\nMaxNickLength = 20\nPingTimeout = 120\nPongTimeout = 60\n\
             [Options]\nPAM = no\nIdent = no\nDNS = no\n",
            motd.display(),
            d.join("pid").display()
        ),
    )?;
    let child = Command::new(NGIRCD)
        .args(["--nodaemon", "--config"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ngircd (Debian package ngircd)")?;
    let mut p = Proc { child };
    wait_until("ngircd", &mut p, Duration::from_secs(10), tcp_ready(port))?;
    Ok(p)
}

/// A field of /proc/PID/smaps_rollup or /proc/PID/status, in KiB.
fn proc_kib(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub fn pss_kib(pid: u32) -> u64 {
    proc_kib(pid, "smaps_rollup", "Pss:")
}

pub fn rss_kib(pid: u32) -> u64 {
    proc_kib(pid, "status", "VmRSS:")
}

/// `pid` and its direct children (nginx's master and workers; the proxy's
/// spawned backends).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            if after
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u32>().ok())
                == Some(pid)
            {
                out.push(p);
            }
        }
    }
    out
}

pub fn tree_pss_kib(pid: u32) -> u64 {
    pss_kib(pid) + children(pid).into_iter().map(pss_kib).sum::<u64>()
}
