//! Sapphire's load generator and benchmark driver (issue 6).
//!
//! `scripts/bench` is the documented entry point; it installs what is needed
//! and runs `cargo bench --bench load -- full`. This binary starts every
//! process it measures on loopback (echo server, sapphire-proxy, nginx,
//! ngircd, real sapphire-backend instances), drives them with
//! tokio-tungstenite clients over rustls, and prints Markdown tables. It
//! never passes or fails on time: figures are compared side by side, in the
//! same run, against named baselines (straight to the socket, nginx).
//!
//! Modes: `full` (about 6 minutes on 2 cores), `smoke` (seconds; also what
//! `cargo test` runs, since it runs bench targets without arguments).
//! `--only relay,idle,login,backend,e2e` picks sections; `--out FILE` also
//! writes the tables there.

mod client;
mod netns;
mod procs;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use client::{Chat, Target};
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use serde_json::json;

const PASSWORD: &str = "bench-password-0123456789";
/// Source address of the legitimate user's logins (floods come from others).
const USER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Source address of the single-address flood.
const FLOOD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// In the sign-in section each relay client sends one message per this
/// (100 clients: 5,000 messages/s), a busy but not saturating chat load, so
/// that the relay's p99 shows what a flood takes from connected users
/// rather than the queueing of a CPU-bound closed loop.
const FLOOD_RELAY_PACE: Duration = Duration::from_millis(20);

#[derive(Clone)]
struct Plan {
    name: &'static str,
    relay_clients: Vec<usize>,
    relay_sizes: Vec<usize>,
    warm: Duration,
    measure: Duration,
    idle_conns: usize,
    logins: usize,
    flood_parallel: usize,
    flood_relay_clients: usize,
    ready_runs: usize,
    pss_many: usize,
    e2e_messages: usize,
    /// Lines of the end-to-end section's paste (one `conversation.send`).
    e2e_burst: usize,
}

fn full() -> Plan {
    Plan {
        name: "full",
        relay_clients: vec![1, 100, 1000],
        relay_sizes: vec![100, 64 * 1024],
        warm: Duration::from_secs(1),
        measure: Duration::from_secs(4),
        idle_conns: 10_000,
        logins: 40,
        flood_parallel: 64,
        flood_relay_clients: 100,
        ready_runs: 5,
        pss_many: 50,
        e2e_messages: 50,
        e2e_burst: 20,
    }
}

fn smoke() -> Plan {
    Plan {
        name: "smoke",
        relay_clients: vec![1, 10],
        relay_sizes: vec![100, 64 * 1024],
        warm: Duration::from_millis(200),
        measure: Duration::from_millis(600),
        idle_conns: 100,
        logins: 3,
        flood_parallel: 8,
        flood_relay_clients: 10,
        ready_runs: 1,
        pss_many: 2,
        e2e_messages: 2,
        e2e_burst: 3,
    }
}

/// What `cargo test` runs (no arguments, usually a debug build): the relay,
/// idle and backend sections at their smallest, to prove the harness works.
fn test_smoke() -> Plan {
    Plan {
        name: "test-smoke",
        relay_clients: vec![1],
        relay_sizes: vec![100, 64 * 1024],
        warm: Duration::from_millis(100),
        measure: Duration::from_millis(300),
        idle_conns: 20,
        ..smoke()
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("echo-server") {
        return echo_server(Path::new(args.get(1).context("echo-server PATH")?));
    }
    let mut plan = test_smoke();
    let mut only: Option<Vec<String>> = Some(vec!["relay".into(), "idle".into(), "backend".into()]);
    let mut out = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "full" => {
                plan = full();
                only = None;
            }
            "smoke" => {
                plan = smoke();
                only = None;
            }
            "--only" => {
                i += 1;
                // (after the mode)
                only = Some(comma_list(args.get(i), "--only LIST")?);
            }
            "--out" => {
                i += 1;
                out = Some(args.get(i).context("--out FILE")?.clone());
            }
            "--e2e-messages" => {
                i += 1;
                plan.e2e_messages = args.get(i).context("--e2e-messages N")?.parse()?;
            }
            "--clients" => {
                i += 1;
                plan.relay_clients = comma_list(args.get(i), "--clients LIST")?;
            }
            "--sizes" => {
                i += 1;
                plan.relay_sizes = comma_list(args.get(i), "--sizes LIST")?;
            }
            "--measure" => {
                i += 1;
                plan.measure =
                    Duration::from_secs_f64(args.get(i).context("--measure SECONDS")?.parse()?);
            }
            "--idle-conns" => {
                i += 1;
                plan.idle_conns = args.get(i).context("--idle-conns N")?.parse()?;
            }
            // cargo test passes its own flags; ignore them.
            _ => {}
        }
        i += 1;
    }
    let nofile = raise_nofile();
    // The proxy holds two descriptors per relayed WebSocket (TLS and the
    // backend's socket): stay under the limit it inherits.
    let fit = (nofile.saturating_sub(400) / 2) as usize;
    if plan.idle_conns > fit {
        eprintln!(
            "open-file limit {nofile}: idle connections capped at {fit} instead of {}",
            plan.idle_conns
        );
        plan.idle_conns = fit;
    }
    // Before any thread starts: the sign-in section's IPv6 /64 flood needs
    // the benchmark's own network namespace (netns.rs).
    if only.as_ref().is_none_or(|o| o.iter().any(|x| x == "login")) {
        match netns::enter() {
            Ok(()) => {
                eprintln!("own network namespace, fd00:5a::/64 on lo: the IPv6 /64 flood runs")
            }
            Err(e) => eprintln!("no IPv6 /64 flood row: {e}"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(run(&plan, only))?;
    println!("{report}");
    if let Some(path) = out {
        std::fs::write(&path, &report)?;
        eprintln!("tables written to {path}");
    }
    eprintln!("bench {}: done", plan.name);
    Ok(())
}

/// Open files: 10,000 WebSockets are 10,000 sockets here, 20,000 in the proxy.
/// Returns the soft limit now in force.
fn raise_nofile() -> u64 {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            let want = 200_000.min(r.rlim_max.max(r.rlim_cur));
            r.rlim_cur = want.max(r.rlim_cur);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}

/// The relay's stand-in backend: echoes every data message, on a
/// multi-threaded runtime so that it is not the bottleneck.
fn echo_server(path: &Path) -> Result<()> {
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)?;
        loop {
            let (s, _) = listener.accept().await?;
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() {
                        break;
                    }
                    if (m.is_binary() || m.is_text()) && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}

// ---------------------------------------------------------------- figures

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[derive(Clone, Copy, Default)]
struct RelayStats {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

/// Each connection sends a binary message of `size` bytes and waits for its
/// echo, again and again (closed loop, one message in flight per client).
/// With `pace`, each client sends at most one message per `pace` (spread
/// over the interval), like users chatting, instead of as fast as it can.
async fn echo_load(
    conns: Vec<client::Ws>,
    size: usize,
    warm: Duration,
    measure: Duration,
    pace: Option<Duration>,
) -> RelayStats {
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let from = start + warm;
    let end = from + measure;
    let payload = Arc::new(vec![0x5au8; size]);
    let mut tasks = tokio::task::JoinSet::new();
    let count = conns.len().max(1) as u32;
    for (i, mut ws) in conns.into_iter().enumerate() {
        let payload = Arc::clone(&payload);
        tasks.spawn(async move {
            let mut next = start + pace.map_or(Duration::ZERO, |p| p * i as u32 / count);
            tokio::time::sleep_until(next).await;
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                if let Some(p) = pace {
                    tokio::time::sleep_until(next).await;
                    next = (next + p).max(tokio::time::Instant::now());
                }
                let t = tokio::time::Instant::now();
                if t >= end {
                    break;
                }
                match tokio::time::timeout(
                    Duration::from_secs(15),
                    client::echo_once(&mut ws, &payload),
                )
                .await
                {
                    Ok(Ok(())) => {
                        if t >= from {
                            lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32)
                        }
                    }
                    _ => {
                        errors += 1;
                        break;
                    }
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
            (lat, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        if let Ok((lat, e)) = r {
            all.extend(lat);
            errors += e;
        } else {
            errors += 1;
        }
    }
    all.sort_unstable();
    RelayStats {
        rate: all.len() as f64 / measure.as_secs_f64(),
        p50: pct(&all, 50.0),
        p99: pct(&all, 99.0),
        errors,
    }
}

async fn relay(
    target: &Target,
    cfg: &Arc<ClientConfig>,
    clients: usize,
    size: usize,
    plan: &Plan,
) -> Result<RelayStats> {
    let conns = client::connect_many(target, cfg, clients, 64).await?;
    Ok(echo_load(conns, size, plan.warm, plan.measure, None).await)
}

struct IdleStats {
    base_kib: u64,
    loaded_kib: u64,
    per_conn: f64,
    open_secs: f64,
    alive: usize,
    checked: usize,
}

/// Memory of the relaying process(es) before and with `n` idle WebSockets.
async fn idle(
    target: &Target,
    cfg: &Arc<ClientConfig>,
    n: usize,
    mem: impl Fn() -> u64,
) -> Result<IdleStats> {
    {
        let mut warm = client::connect_many(target, cfg, 20, 20).await?;
        for ws in &mut warm {
            client::echo_once(ws, &[1u8; 100]).await?;
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let base_kib = mem();
    let t = Instant::now();
    let mut conns = client::connect_many(target, cfg, n, 100).await?;
    let open_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded_kib = mem();
    let step = (n / 20).max(1);
    let (mut alive, mut checked) = (0, 0);
    for ws in conns.iter_mut().step_by(step) {
        checked += 1;
        if let Ok(Ok(())) = tokio::time::timeout(
            Duration::from_secs(5),
            client::echo_once(ws, b"still there?"),
        )
        .await
        {
            alive += 1;
        }
    }
    drop(conns);
    Ok(IdleStats {
        base_kib,
        loaded_kib,
        per_conn: (loaded_kib.saturating_sub(base_kib) * 1024) as f64 / n as f64,
        open_secs,
        alive,
        checked,
    })
}

/// Sign-ins one after the other (at most `n`, none started after
/// `deadline`), each on a new TLS connection.
async fn login_latency(
    port: u16,
    cfg: &Arc<ClientConfig>,
    user: &str,
    n: usize,
    deadline: Instant,
    device: Option<&str>,
) -> Result<(Vec<u32>, usize)> {
    let mut lat = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let a = match client::login_with(port, cfg, Some(USER_IP), user, PASSWORD, device).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("legitimate sign-in failed: {e}");
                failed += 1;
                continue;
            }
        };
        if a.status == 200 {
            lat.push(t.elapsed().as_micros() as u32);
        } else {
            eprintln!("legitimate sign-in answered {}", a.status);
            failed += 1;
        }
    }
    lat.sort_unstable();
    Ok((lat, failed))
}

#[derive(Default)]
struct FloodStats {
    attempts: u64,
    by_status: BTreeMap<u16, u64>,
    errors: u64,
    rate: f64,
}

/// The flooding thread's nice value in all but one condition.
const FLOODER_NICE: i32 = 19;

/// Where a flood's attempts come from.
#[derive(Clone, Copy, PartialEq)]
enum FloodSource {
    /// One IPv4 address.
    One,
    /// A new 127.x.y.z address for each attempt.
    ManyV4,
    /// A new address of one IPv6 /64 for each attempt (`netns`).
    OneV6Net,
    /// Not a sign-in and not the proxy: connections from one address to a
    /// listener of the flood's own that accepts and closes them, as the
    /// proxy's per-address limit does with most of a one-address flood.
    /// The baseline of what connection churn alone costs the relay on this
    /// machine (the kernel's TCP work, the flooder's syscalls).
    TcpChurn,
}

/// Wrong-password sign-ins from `parallel` clients for `dur`, with random
/// user names: from many loopback addresses (nothing rate-limited, every
/// attempt costs a hash), from one address, or from one IPv6 /64 (which
/// the proxy's limits count as one address).
async fn flood(
    port: u16,
    cfg: &Arc<ClientConfig>,
    parallel: usize,
    dur: Duration,
    source: FloodSource,
) -> FloodStats {
    let counter = Arc::new(AtomicU64::new(0));
    let end = tokio::time::Instant::now() + dur;
    let mut tasks = tokio::task::JoinSet::new();
    let churn_port = match source {
        FloodSource::TcpChurn => {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("churn listener");
            let port = l.local_addr().expect("churn port").port();
            tokio::spawn(async move {
                while tokio::time::Instant::now() < end {
                    if let Ok((s, _)) = l.accept().await {
                        drop(s);
                    }
                }
            });
            Some(port)
        }
        _ => None,
    };
    for _ in 0..parallel {
        let counter = Arc::clone(&counter);
        let cfg = Arc::clone(cfg);
        tasks.spawn(async move {
            let mut st = FloodStats::default();
            while tokio::time::Instant::now() < end {
                let c = counter.fetch_add(1, Ordering::Relaxed);
                if let Some(port) = churn_port {
                    st.attempts += 1;
                    match churn_once(port).await {
                        Ok(()) => *st.by_status.entry(0).or_default() += 1,
                        Err(_) => st.errors += 1,
                    }
                    continue;
                }
                let src = match source {
                    FloodSource::TcpChurn => unreachable!("handled above"),
                    FloodSource::ManyV4 => IpAddr::V4(Ipv4Addr::new(
                        127,
                        10 + ((c >> 16) % 200) as u8,
                        (c >> 8) as u8,
                        c as u8,
                    )),
                    FloodSource::One => FLOOD_IP,
                    FloodSource::OneV6Net => netns::v6_source(c),
                };
                let user = format!("guess{}", c % 100_000);
                st.attempts += 1;
                match tokio::time::timeout_at(
                    end + Duration::from_secs(10),
                    client::login(port, &cfg, Some(src), &user, "wrong"),
                )
                .await
                {
                    Ok(Ok(a)) => *st.by_status.entry(a.status).or_default() += 1,
                    _ => st.errors += 1,
                }
            }
            st
        });
    }
    let mut total = FloodStats::default();
    while let Some(Ok(st)) = tasks.join_next().await {
        total.attempts += st.attempts;
        total.errors += st.errors;
        for (k, v) in st.by_status {
            *total.by_status.entry(k).or_default() += v;
        }
    }
    total.rate = total.attempts as f64 / dur.as_secs_f64();
    total
}

/// One connection of the churn baseline: connect from the flood's
/// address, wait for the listener to close it.
async fn churn_once(port: u16) -> std::io::Result<()> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(std::net::SocketAddr::new(FLOOD_IP, 0))?;
    let mut s = sock
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    let mut b = [0u8; 1];
    let _ = tokio::io::AsyncReadExt::read(&mut s, &mut b).await;
    Ok(())
}

// ------------------------------------------------------------ the run

struct Report {
    text: String,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {:.1} GiB, Linux {}, load average at start {}",
        mem as f64 / 1048576.0,
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn nginx_version() -> String {
    std::process::Command::new(procs::NGINX)
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace("nginx version: ", "")
        })
        .unwrap_or_else(|_| "not installed".into())
}

fn fmt_ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "–".into()
    } else {
        format!("{:.2}", a / b)
    }
}

fn size_name(s: usize) -> String {
    if s >= 1024 {
        format!("{} KiB", s / 1024)
    } else {
        format!("{s} B")
    }
}

async fn run(plan: &Plan, only: Option<Vec<String>>) -> Result<String> {
    let wants = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    let tmp = tempfile::Builder::new()
        .prefix("sapphire-bench-")
        .tempdir()?;
    let dir = tmp.path();
    let cert = procs::make_cert(dir)?;
    let cfg = client::tls_config(cert.der.clone());
    let accounts = dir.join("accounts.json");
    procs::add_user(&accounts, "bench", PASSWORD)?;
    let mut r = Report {
        text: String::new(),
    };
    r.line(format!(
        "Sapphire benchmarks ({} run), {}",
        plan.name,
        chrono_now()
    ));
    r.line(format!("Machine: {}", machine()));
    r.line(format!(
        "nginx: {}; TLS 1.3 TLS13_AES_128_GCM_SHA256, X25519, ECDSA P-256 certificate for both",
        nginx_version()
    ));
    r.line("");

    // The echo server stands in for the backend in relay figures; the
    // proxy reaches it as user `bench` through `<dir>/backends/bench.sock`.
    let (_echo, sock) = procs::start_echo(dir)?;
    let bdir = dir.join("backends");
    std::fs::create_dir_all(&bdir)?;
    std::os::unix::fs::symlink(&sock, bdir.join("bench.sock"))?;
    let have_nginx = procs::nginx_installed();
    if !have_nginx {
        eprintln!("nginx is not installed: its columns stay empty (scripts/bench installs it)");
    }

    let relays = Relays {
        dir,
        cert: &cert,
        cfg: &cfg,
        accounts: &accounts,
        bdir: &bdir,
        sock: &sock,
        have_nginx,
    };
    if wants("relay") {
        section_relay(plan, &relays, &mut r).await?;
    }
    if wants("idle") {
        section_idle(plan, &relays, &mut r).await?;
    }
    if wants("login") {
        section_login(plan, &relays, &mut r).await?;
    }
    if wants("backend") {
        section_backend(plan, dir, &mut r).await?;
    }
    if wants("e2e") {
        section_e2e(plan, dir, &cert, &cfg, &mut r).await?;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    r.line(format!(
        "Load average at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    Ok(r.text)
}

/// The comma-separated values of an option's argument (missing: an error
/// that says `usage`).
fn comma_list<T>(arg: Option<&String>, usage: &'static str) -> Result<Vec<T>>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(arg
        .context(usage)?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?)
}

fn chrono_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

async fn proxy_cookie(port: u16, cfg: &Arc<ClientConfig>) -> Result<String> {
    let a = client::login(port, cfg, Some(USER_IP), "bench", PASSWORD).await?;
    if a.status != 200 {
        bail!("login answered {}", a.status);
    }
    a.set_cookie.context("no session cookie")
}

/// What the relay, idle and login sections share: the run's directory,
/// certificate and client TLS config, the accounts file (user `bench`),
/// and the echo server standing in for the backend (`sock`, which the
/// proxy reaches as `bench` through `bdir`).
struct Relays<'a> {
    dir: &'a Path,
    cert: &'a procs::Cert,
    cfg: &'a Arc<ClientConfig>,
    accounts: &'a Path,
    bdir: &'a Path,
    sock: &'a Path,
    have_nginx: bool,
}

impl Relays<'_> {
    /// A fresh sapphire-proxy on a free port in front of the echo server,
    /// that port, and `bench`'s session cookie.
    async fn proxy(&self) -> Result<(procs::Proc, u16, String)> {
        let port = procs::free_port();
        let proxy = procs::start_proxy(
            self.dir,
            self.cert,
            self.accounts,
            port,
            procs::Backends::Existing(self.bdir),
        )?;
        let cookie = proxy_cookie(port, self.cfg).await?;
        Ok((proxy, port, cookie))
    }

    /// A fresh nginx on a free port in front of the echo server, and that
    /// port; `None` when nginx is not installed.
    fn nginx(&self) -> Result<Option<(procs::Proc, u16)>> {
        if !self.have_nginx {
            return Ok(None);
        }
        let port = procs::free_port();
        let nginx = procs::start_nginx(self.dir, self.cert, port, self.sock)?;
        Ok(Some((nginx, port)))
    }
}

async fn section_relay(plan: &Plan, relays: &Relays<'_>, r: &mut Report) -> Result<()> {
    let cfg = relays.cfg;
    let (_proxy, pport, cookie) = relays.proxy().await?;
    let nginx = relays.nginx()?;
    let targets = [
        ("direct", Some(Target::Direct(relays.sock.to_owned()))),
        (
            "proxy",
            Some(Target::Tls {
                port: pport,
                cookie: Some(cookie),
            }),
        ),
        (
            "nginx",
            nginx
                .as_ref()
                .map(|&(_, port)| Target::Tls { port, cookie: None }),
        ),
    ];
    r.line(
        "## 1. Relay: echo round trips (a) straight to the socket, (b) sapphire-proxy, (c) nginx",
    );
    r.line("");
    r.line(format!(
        "Closed loop, one message in flight per client, {:?} warm-up then {:?} measured per cell. Rate in messages/s (round trips); latency in ms.",
        plan.warm, plan.measure
    ));
    r.line("");
    r.line("| clients | size | a msg/s | a p50 | a p99 | b msg/s | b p50 | b p99 | c msg/s | c p50 | c p99 | b/a rate | b/c rate | b/c p99 |");
    r.line("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &clients in &plan.relay_clients {
        for &size in &plan.relay_sizes {
            let mut st = [RelayStats {
                rate: f64::NAN,
                p50: f64::NAN,
                p99: f64::NAN,
                errors: 0,
            }; 3];
            for (i, (name, target)) in targets.iter().enumerate() {
                let Some(target) = target else { continue };
                st[i] = relay(target, cfg, clients, size, plan)
                    .await
                    .with_context(|| format!("relay via {name}"))?;
                eprintln!(
                    "relay {name:6} {clients:5} clients {:>7}: {:9.0} msg/s p50 {} ms p99 {} ms{}",
                    size_name(size),
                    st[i].rate,
                    fmt_ms(st[i].p50),
                    fmt_ms(st[i].p99),
                    if st[i].errors > 0 {
                        format!(" ({} errors)", st[i].errors)
                    } else {
                        String::new()
                    }
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let [a, b, c] = st;
            r.line(format!(
                "| {clients} | {} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                size_name(size),
                a.rate,
                fmt_ms(a.p50),
                fmt_ms(a.p99),
                b.rate,
                fmt_ms(b.p50),
                fmt_ms(b.p99),
                if c.rate.is_nan() { "–".into() } else { format!("{:.0}", c.rate) },
                fmt_ms(c.p50),
                fmt_ms(c.p99),
                ratio(b.rate, a.rate),
                ratio(b.rate, c.rate),
                ratio(b.p99, c.p99),
            ));
            let errors = a.errors + b.errors + c.errors;
            if errors > 0 {
                r.line(format!(
                    "| | errors: a {} b {} c {} | | | | | | | | | | | | |",
                    a.errors, b.errors, c.errors
                ));
            }
        }
    }
    r.line("");
    Ok(())
}

async fn section_idle(plan: &Plan, relays: &Relays<'_>, r: &mut Report) -> Result<()> {
    let cfg = relays.cfg;
    let n = plan.idle_conns;
    r.line(format!(
        "## 2. Idle WebSockets: memory of the relaying process at {n} open connections"
    ));
    if n < 10_000 && plan.name == "full" {
        r.line("");
        r.line("(Fewer than 10,000: the open-file limit here could not be raised far enough; the proxy needs two descriptors per WebSocket.)");
    }
    r.line("");
    r.line("Fresh processes; PSS (/proc/PID/smaps_rollup; nginx: master and workers) after 20 warm-up connections, then with all open and idle for 2 s. Kernel socket buffers are not included.");
    r.line("");
    r.line("| relay | PSS before | PSS with all open | per connection | time to open all | still echoing |");
    r.line("|---|---:|---:|---:|---:|---:|");
    {
        let (proxy, pport, cookie) = relays.proxy().await?;
        let pid = proxy.pid();
        let st = idle(
            &Target::Tls {
                port: pport,
                cookie: Some(cookie),
            },
            cfg,
            n,
            || procs::pss_kib(pid),
        )
        .await?;
        idle_row(r, "sapphire-proxy", &st);
    }
    if let Some((nginx, nport)) = relays.nginx()? {
        let pid = nginx.pid();
        let st = idle(
            &Target::Tls {
                port: nport,
                cookie: None,
            },
            cfg,
            n,
            || procs::tree_pss_kib(pid),
        )
        .await?;
        idle_row(r, "nginx", &st);
    }
    r.line("");
    Ok(())
}

fn idle_row(r: &mut Report, name: &str, st: &IdleStats) {
    eprintln!(
        "idle {name}: {:.1} KiB per connection",
        st.per_conn / 1024.0
    );
    r.line(format!(
        "| {name} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} s | {}/{} |",
        st.base_kib as f64 / 1024.0,
        st.loaded_kib as f64 / 1024.0,
        st.per_conn / 1024.0,
        st.open_secs,
        st.alive,
        st.checked
    ));
}

async fn section_login(plan: &Plan, relays: &Relays<'_>, r: &mut Report) -> Result<()> {
    let cfg = relays.cfg;
    let (_proxy, port, cookie) = relays.proxy().await?;
    let target = Target::Tls {
        port,
        cookie: Some(cookie),
    };
    // The user's browser has signed in before (its device cookie), as a
    // returning user's has.
    let device = client::login(port, cfg, Some(USER_IP), "bench", PASSWORD)
        .await?
        .device_cookie;
    let clients = plan.flood_relay_clients;
    let dur = plan.warm + plan.measure + Duration::from_millis(100);
    r.line(format!(
        "## 3. Sign-ins, and the relay under a wrong-password flood ({} flooding clients; relay: {clients} clients × 100 B through the proxy, each one message per {} ms)",
        plan.flood_parallel,
        FLOOD_RELAY_PACE.as_millis()
    ));
    r.line("");
    r.line("| condition | relay msg/s | relay p50 ms | relay p99 ms | p99 / quiet p99 | sign-ins | sign-in p50 ms | sign-in p99 ms | flood attempts/s | flood answers |");
    r.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut quiet_p99 = f64::NAN;
    // The flooding client runs at nice 19: an attacker's CPU is not the
    // server's, and what the relay's p99 is to show is what the proxy's own
    // work for the flood takes from connected users. One row keeps the
    // flooder at the relay clients' priority, for comparison.
    let mut conditions = vec![
        ("quiet", None, FLOODER_NICE),
        ("sign-ins only", None, FLOODER_NICE),
        (
            "baseline: connection churn, not to the proxy",
            Some(FloodSource::TcpChurn),
            FLOODER_NICE,
        ),
        (
            "flood from one address",
            Some(FloodSource::One),
            FLOODER_NICE,
        ),
        (
            "flood from many addresses",
            Some(FloodSource::ManyV4),
            FLOODER_NICE,
        ),
    ];
    if netns::v6_ready() {
        conditions.push((
            "flood from one IPv6 /64",
            Some(FloodSource::OneV6Net),
            FLOODER_NICE,
        ));
    }
    conditions.push((
        "flood from many addresses, flooder not niced",
        Some(FloodSource::ManyV4),
        0,
    ));
    for (cond, source, nice) in conditions {
        let conns = client::connect_many(&target, cfg, clients, 64).await?;
        let signing_in = cond != "quiet";
        // The flood runs on a thread of its own (one core at most), so that
        // the relay's clients here do not queue behind its handshakes.
        let flooder = source.map(|source| {
            let cfg = Arc::clone(cfg);
            let parallel = plan.flood_parallel;
            std::thread::spawn(move || {
                if nice > 0 {
                    let tid = rustix::thread::gettid();
                    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
                        eprintln!("flood thread keeps nice 0: {e}");
                    }
                }
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("flood runtime")
                    .block_on(flood(port, &cfg, parallel, dur, source))
            })
        });
        let (relay, fl, logins) = tokio::join!(
            echo_load(conns, 100, plan.warm, plan.measure, Some(FLOOD_RELAY_PACE)),
            async {
                match flooder {
                    Some(h) => tokio::task::spawn_blocking(move || h.join().ok())
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                }
            },
            async {
                if !signing_in {
                    return Ok((Vec::new(), 0));
                }
                // Sign-ins start with the measured window and stay in it.
                tokio::time::sleep(plan.warm).await;
                login_latency(
                    port,
                    cfg,
                    "bench",
                    plan.logins,
                    Instant::now() + plan.measure,
                    device.as_deref(),
                )
                .await
            }
        );
        let (lat, failed) = logins?;
        if cond == "quiet" {
            quiet_p99 = relay.p99;
        }
        let answers = fl
            .as_ref()
            .map(|f| {
                let mut s: Vec<String> = f
                    .by_status
                    .iter()
                    .map(|(k, v)| match k {
                        0 => format!("closed×{v}"),
                        _ => format!("{k}×{v}"),
                    })
                    .collect();
                if f.errors > 0 {
                    s.push(format!("errors×{}", f.errors));
                }
                s.join(" ")
            })
            .unwrap_or_else(|| "–".into());
        eprintln!(
            "login {cond}: relay p99 {} ms, sign-in p50 {} ms, {answers}",
            fmt_ms(relay.p99),
            fmt_ms(pct(&lat, 50.0))
        );
        r.line(format!(
            "| {cond} | {:.0} | {} | {} | {} | {} | {} | {}{} | {} | {answers} |",
            relay.rate,
            fmt_ms(relay.p50),
            fmt_ms(relay.p99),
            ratio(relay.p99, quiet_p99),
            lat.len(),
            fmt_ms(pct(&lat, 50.0)),
            fmt_ms(pct(&lat, 99.0)),
            if failed > 0 {
                format!(" ({failed} refused)")
            } else {
                String::new()
            },
            fl.as_ref()
                .map(|f| format!("{:.0}", f.rate))
                .unwrap_or_else(|| "–".into()),
        ));
        // Let queued hashes finish before the next condition.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    r.line("");
    r.line(format!(
        "Sign-ins: up to {} in a row from one returning browser (it holds its device cookie from a sign-in before the first condition) during the measured window, each on a new TLS connection (argon2id m=19 MiB, t=2, p=1); refused counts 429, 503 and failed connections. \
         Flood attempts use random user names; \"many addresses\" come from distinct 127.x.y.z sources so that no per-address limit applies and every attempt costs a hash (or is answered busy when it could not be hashed within 0.5 s); \"one address\" meets the per-address handshake limit first; \"one IPv6 /64\" gives each attempt its own address of fd00:5a::/64 (the benchmark's own network namespace, see netns.rs), which the proxy counts as one address. Relay clients connect from their own 127.1.x.y addresses. \
         The flooding clients run on the same 2 cores (their TLS handshakes too) at nice {FLOODER_NICE} (an attacker's CPU is not the server's), except in the last row, where they compete with the relay's clients and the proxy as equals.",
        plan.logins
    ));
    if !netns::v6_ready() {
        r.line("");
        r.line("No IPv6 /64 row: the benchmark could not make its own network namespace (it needs root), and it does not change the machine's own network configuration.");
    }
    r.line("");
    Ok(())
}

/// Starts a real backend with `NOTIFY_SOCKET` and times exec → READY=1.
fn exec_to_ready(dir: &Path, i: usize) -> Result<Duration> {
    let d = dir.join(format!("ready-{i}"));
    std::fs::create_dir_all(&d)?;
    let notify = d.join("notify.sock");
    let rx = std::os::unix::net::UnixDatagram::bind(&notify)?;
    rx.set_read_timeout(Some(Duration::from_secs(20)))?;
    let t = Instant::now();
    let child = std::process::Command::new(procs::BACKEND)
        .arg("--listen")
        .arg(d.join("b.sock"))
        .arg("--state-dir")
        .arg(d.join("state"))
        .env("NOTIFY_SOCKET", &notify)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let _p = procs::Proc { child };
    let mut buf = [0u8; 4096];
    loop {
        let n = rx
            .recv(&mut buf)
            .context("no READY=1 from sapphire-backend")?;
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            return Ok(t.elapsed());
        }
    }
}

/// Socket activation as systemd does it: the socket exists and a client
/// has connected before the backend is executed (LISTEN_FDS=1, fd 3); times
/// connect → the `hello` reply.
async fn activated_hello(dir: &Path, i: usize) -> Result<Duration> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let d = dir.join(format!("act-{i}"));
    std::fs::create_dir_all(&d)?;
    let path = d.join("b.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    let t = Instant::now();
    let c = std::os::unix::net::UnixStream::connect(&path)?;
    c.set_nonblocking(true)?;
    let c = tokio::net::UnixStream::from_std(c)?;
    let fd = listener.as_raw_fd();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\"")
        .arg(procs::BACKEND)
        .arg("--state-dir")
        .arg(d.join("state"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(listener);
    let _p = procs::Proc { child };
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::client_async("ws://localhost/ws", Box::new(c) as Box<dyn client::Io>),
    )
    .await
    .context("handshake timed out")??;
    let mut chat = Chat::new(ws);
    chat.request("hello", json!({}), Duration::from_secs(20))
        .await?;
    Ok(t.elapsed())
}

/// Starts `k` idle backends (no IM account), each with one connected client
/// that said hello; returns (PSS, RSS) per backend in KiB.
async fn backends_pss(dir: &Path, tag: &str, k: usize) -> Result<(f64, f64)> {
    let mut procs_ = Vec::new();
    let mut socks = Vec::new();
    for i in 0..k {
        let d = dir.join(format!("pss-{tag}-{i}"));
        std::fs::create_dir_all(&d)?;
        let sock = d.join("b.sock");
        let child = std::process::Command::new(procs::BACKEND)
            .arg("--listen")
            .arg(&sock)
            .arg("--state-dir")
            .arg(d.join("state"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        procs_.push(procs::Proc { child });
        socks.push(sock);
    }
    let mut chats = Vec::new();
    for sock in &socks {
        let deadline = Instant::now() + Duration::from_secs(30);
        let s = loop {
            match tokio::net::UnixStream::connect(sock).await {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => return Err(e).context("backend socket"),
            }
        };
        let (ws, _) = tokio_tungstenite::client_async(
            "ws://localhost/ws",
            Box::new(s) as Box<dyn client::Io>,
        )
        .await?;
        let mut chat = Chat::new(ws);
        chat.request("hello", json!({}), Duration::from_secs(20))
            .await?;
        chats.push(chat);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pss: u64 = procs_.iter().map(|p| procs::pss_kib(p.pid())).sum();
    let rss: u64 = procs_.iter().map(|p| procs::rss_kib(p.pid())).sum();
    drop(chats);
    Ok((pss as f64 / k as f64, rss as f64 / k as f64))
}

async fn section_backend(plan: &Plan, dir: &Path, r: &mut Report) -> Result<()> {
    let mut ready = Vec::new();
    let mut hello = Vec::new();
    for i in 0..plan.ready_runs {
        ready.push(exec_to_ready(dir, i)?.as_micros() as u32);
        hello.push(activated_hello(dir, i).await?.as_micros() as u32);
    }
    ready.sort_unstable();
    hello.sort_unstable();
    let (pss1, rss1) = backends_pss(dir, "one", 1).await?;
    let (pssn, rssn) = backends_pss(dir, "many", plan.pss_many).await?;
    eprintln!(
        "backend: ready {} ms, hello {} ms, PSS {pss1:.0}/{pssn:.0} KiB",
        fmt_ms(pct(&ready, 50.0)),
        fmt_ms(pct(&hello, 50.0))
    );
    r.line("## 4. Backend (real sapphire-backend, no IM account)");
    r.line("");
    r.line("| figure | median | worst | runs |");
    r.line("|---|---:|---:|---:|");
    r.line(format!(
        "| exec → READY=1 (sd_notify), fresh state | {} ms | {} ms | {} |",
        fmt_ms(pct(&ready, 50.0)),
        fmt_ms(pct(&ready, 100.0)),
        ready.len()
    ));
    r.line(format!(
        "| socket-activated start: connect → first `hello` reply | {} ms | {} ms | {} |",
        fmt_ms(pct(&hello, 50.0)),
        fmt_ms(pct(&hello, 100.0)),
        hello.len()
    ));
    r.line("");
    r.line("| idle backends at once | PSS each | RSS each |");
    r.line("|---:|---:|---:|");
    r.line(format!(
        "| 1 | {:.1} MB | {:.1} MB |",
        pss1 * 1.024 / 1000.0,
        rss1 * 1.024 / 1000.0
    ));
    r.line(format!(
        "| {} | {:.1} MB | {:.1} MB |",
        plan.pss_many,
        pssn * 1.024 / 1000.0,
        rssn * 1.024 / 1000.0
    ));
    r.line("");
    Ok(())
}

/// A Sapphire user for the end-to-end section, signed in through the
/// proxy, with an IRC account on the local ngircd that has joined
/// `channel`. Returns the client and the account id.
async fn e2e_user(
    port: u16,
    cfg: &Arc<ClientConfig>,
    irc_port: u16,
    user: &str,
    channel: &str,
) -> Result<(Chat, i64)> {
    let wait = Duration::from_secs(30);
    let a = client::login(port, cfg, Some(USER_IP), user, PASSWORD).await?;
    let cookie = a.set_cookie.context("no cookie")?;
    let ws = client::ws_connect(
        &Target::Tls {
            port,
            cookie: Some(cookie),
        },
        cfg,
    )
    .await?;
    let mut c = Chat::new(ws);
    c.request("hello", json!({}), wait).await?;
    let acc = c
        .request(
            "account.add",
            json!({"protocol": "prpl-irc", "username": format!("{user}@127.0.0.1"),
                   "options": {"port": irc_port}}),
            wait,
        )
        .await?;
    let id = acc["account"]["id"].as_i64().context("account id")?;
    c.event(wait, |e| {
        e["op"] == "account.status" && e["account"] == id && e["status"] == "connected"
    })
    .await
    .context("IRC account did not connect")?;
    c.request("chat.join", json!({"account": id, "name": channel}), wait)
        .await?;
    c.event(wait, |e| e["op"] == "chat.joined").await?;
    Ok((c, id))
}

/// Isolated messages: `users.0` sends `n` channel messages on IRC, one at
/// a time, `gap` apart; `users.1` receives them; both through the proxy.
/// Returns the latencies to the receiving client and to a raw IRC client in
/// the same channel.
async fn e2e_phase(
    port: u16,
    cfg: &Arc<ClientConfig>,
    irc_port: u16,
    users: [&str; 2],
    channel: &str,
    n: usize,
    gap: Duration,
) -> Result<E2e> {
    let wait = Duration::from_secs(30);
    let (mut alice, account) = e2e_user(port, cfg, irc_port, users[0], channel).await?;
    let (mut bob, _) = e2e_user(port, cfg, irc_port, users[1], channel).await?;
    // A raw IRC client in the channel splits the path in two halves.
    let mut watcher = Irc::connect(irc_port, &format!("w{}", &users[0]), channel).await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut out = E2e::default();
    for i in 0..n {
        let text = format!("bench message {i}");
        let t = Instant::now();
        let id = alice
            .send(
                "conversation.send",
                json!({"account": account, "conversation": {"kind": "chat", "name": channel}, "text": text}),
            )
            .await?;
        let (seen, got, ack) = tokio::join!(
            async {
                let r = watcher.expect(&text).await;
                (t.elapsed(), r)
            },
            bob.event(wait, |e| e["op"] == "message" && e["text"] == text.as_str()),
            async {
                let r = alice.reply(id, wait).await;
                (t.elapsed(), r)
            }
        );
        got.with_context(|| format!("{} did not get message {i}", users[1]))?;
        let end = t.elapsed();
        seen.1?;
        let reply = ack.1?;
        if reply["queued"].as_u64().unwrap_or(0) > 0 {
            bail!("isolated message {i} waited for the pace: {reply}");
        }
        out.end.push(end.as_micros() as u32);
        out.first.push(seen.0.as_micros() as u32);
        out.second
            .push(end.saturating_sub(seen.0).as_micros() as u32);
        out.ack.push(ack.0.as_micros() as u32);
        alice.events.clear();
        tokio::time::sleep(gap).await;
    }
    for v in [&mut out.end, &mut out.first, &mut out.second, &mut out.ack] {
        v.sort_unstable();
    }
    Ok(out)
}

/// A paste: `user` sends `lines` lines in one `conversation.send` (a fresh
/// account: the pace's burst is unspent). Returns, in µs from the request,
/// when a raw IRC client in the channel saw each line, in order.
async fn e2e_burst(
    port: u16,
    cfg: &Arc<ClientConfig>,
    irc_port: u16,
    user: &str,
    channel: &str,
    lines: usize,
) -> Result<Vec<u32>> {
    let wait = Duration::from_secs(120);
    let (mut c, account) = e2e_user(port, cfg, irc_port, user, channel).await?;
    let mut watcher = Irc::connect(irc_port, &format!("w{user}"), channel).await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let texts: Vec<String> = (0..lines).map(|i| format!("paste line {i}")).collect();
    let t = Instant::now();
    let id = c
        .send(
            "conversation.send",
            json!({"account": account, "conversation": {"kind": "chat", "name": channel},
                   "text": texts.join("\n")}),
        )
        .await?;
    let (seen, reply) = tokio::join!(
        async {
            let mut seen = Vec::new();
            for text in &texts {
                // "paste line 1" must not match "paste line 10": whole line.
                watcher.expect(&format!(":{text}\r")).await?;
                seen.push(t.elapsed().as_micros() as u32);
            }
            anyhow::Ok(seen)
        },
        c.reply(id, wait)
    );
    reply?;
    seen
}

/// Latencies of one end-to-end phase, sorted, in µs.
#[derive(Default)]
struct E2e {
    /// Sender's request → its reply (stored, handed to libpurple).
    ack: Vec<u32>,
    /// Sender → a raw IRC client in the channel.
    first: Vec<u32>,
    /// That raw client's view → the receiving Sapphire client.
    second: Vec<u32>,
    /// Sender → the receiving Sapphire client.
    end: Vec<u32>,
}

async fn section_e2e(
    plan: &Plan,
    dir: &Path,
    cert: &procs::Cert,
    cfg: &Arc<ClientConfig>,
    r: &mut Report,
) -> Result<()> {
    let irc_port = procs::free_port();
    let _irc = procs::start_ngircd(dir, irc_port)?;
    let accounts = dir.join("accounts-e2e.json");
    for u in ["alice", "bob", "carol"] {
        procs::add_user(&accounts, u, PASSWORD)?;
    }
    let e2e_dir = dir.join("e2e");
    std::fs::create_dir_all(&e2e_dir)?;
    let port = procs::free_port();
    let proxy = procs::start_proxy(&e2e_dir, cert, &accounts, port, procs::Backends::Spawn)?;
    // Isolated messages: spaced so that Sapphire's pace (a burst of 10,
    // then one line per 2 s) never holds one back, and ngircd's own
    // throttle (a few lines a second per client) does not either; the raw
    // baseline goes at the same pace.
    let gap = Duration::from_millis(500);
    let n = plan.e2e_messages.min(12);
    let iso = e2e_phase(port, cfg, irc_port, ["alice", "bob"], "#bench", n, gap).await?;
    let raw = irc_baseline(irc_port, n, gap)
        .await
        .context("raw IRC baseline")?;
    let burst = e2e_burst(port, cfg, irc_port, "carol", "#bench2", plan.e2e_burst).await?;
    let raw_burst = irc_burst_baseline(irc_port, plan.e2e_burst)
        .await
        .context("raw IRC burst baseline")?;
    let backends = procs::children(proxy.pid());
    let pss: Vec<u64> = backends.iter().map(|&p| procs::pss_kib(p)).collect();
    eprintln!(
        "e2e: to IRC p50 {} ms p99 {} ms (raw {} / {} ms)",
        fmt_ms(pct(&iso.first, 50.0)),
        fmt_ms(pct(&iso.first, 99.0)),
        fmt_ms(pct(&raw, 50.0)),
        fmt_ms(pct(&raw, 99.0))
    );
    r.line("## 5. End to end: client → proxy → backend → ngircd → backend → proxy → client");
    r.line("");
    r.line(format!(
        "IRC channel messages on a local ngircd through the proxy; Sapphire paces IRC lines itself \
         (a burst of 10, then one every 2 s; libpurple's own queue is off, `docs/irc.md`). \
         Isolated: {n} messages one at a time, each {} ms after the previous arrived (within the burst). \
         Paste: {} lines in one `conversation.send` from a fresh account. A raw IRC client in the channel \
         splits the path: \"to IRC\" is when it sees the line, \"from IRC\" the rest. \
         Baseline: two raw IRC clients through the same ngircd, at the same pace.",
        gap.as_millis(),
        plan.e2e_burst,
    ));
    r.line("");
    r.line("| path | Sapphire p50 / p99 | baseline: raw IRC → ngircd → raw IRC p50 / p99 |");
    r.line("|---|---:|---:|");
    let pp = |v: &[u32]| format!("{} / {} ms", fmt_ms(pct(v, 50.0)), fmt_ms(pct(v, 99.0)));
    r.line(format!(
        "| send: client → proxy → backend → reply (stored, handed to libpurple) | {} | |",
        pp(&iso.ack)
    ));
    r.line(format!(
        "| to IRC, isolated: client → proxy → backend → ngircd → raw client | {} | {} |",
        pp(&iso.first),
        pp(&raw)
    ));
    r.line(format!(
        "| from IRC: ngircd → backend (stored) → proxy → client | {} | |",
        pp(&iso.second)
    ));
    r.line(format!(
        "| **end to end**, isolated ({} messages) | {} | {} |",
        iso.end.len(),
        pp(&iso.end),
        pp(&raw)
    ));
    let last = |v: &[u32]| {
        v.last().map_or("-".into(), |&l| {
            format!("{} ms", fmt_ms(f64::from(l) / 1000.0))
        })
    };
    let mut burst_sorted = burst.clone();
    burst_sorted.sort_unstable();
    let mut raw_sorted = raw_burst.clone();
    raw_sorted.sort_unstable();
    r.line(format!(
        "| to IRC, {}-line paste: each line, p50 / p99 | {} | {} |",
        plan.e2e_burst,
        pp(&burst_sorted),
        pp(&raw_sorted)
    ));
    r.line(format!(
        "| to IRC, {}-line paste: **the last line** | {} | {} |",
        plan.e2e_burst,
        last(&burst),
        last(&raw_burst)
    ));
    r.line("");
    r.line(format!(
        "PSS of the {} backends with a signed-on IRC account and a joined channel: {}.",
        pss.len(),
        pss.iter()
            .map(|k| format!("{:.1} MB", *k as f64 * 1.024 / 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    r.line("");
    Ok(())
}

/// A raw IRC client writes `lines` lines at once; when another raw client
/// sees each (µs from the write), in order: ngircd's own throttle.
async fn irc_burst_baseline(port: u16, lines: usize) -> Result<Vec<u32>> {
    let mut a = Irc::connect(port, "rawc", "#rawburst").await?;
    let mut b = Irc::connect(port, "rawd", "#rawburst").await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let texts: Vec<String> = (0..lines).map(|i| format!("raw paste {i}")).collect();
    let all: String = texts
        .iter()
        .map(|t| format!("PRIVMSG #rawburst :{t}\r\n"))
        .collect();
    let t = Instant::now();
    a.w.write_all(all.as_bytes()).await?;
    let mut seen = Vec::new();
    for text in &texts {
        b.expect(&format!(":{text}\r")).await?;
        seen.push(t.elapsed().as_micros() as u32);
    }
    Ok(seen)
}

/// The floor of the end-to-end figure: two raw IRC clients through the same
/// ngircd, at the same pace.
async fn irc_baseline(port: u16, n: usize, gap: Duration) -> Result<Vec<u32>> {
    let mut a = Irc::connect(port, "rawa", "#raw").await?;
    let mut b = Irc::connect(port, "rawb", "#raw").await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut lat = Vec::new();
    for i in 0..n {
        let text = format!("raw message {i}");
        let t = Instant::now();
        a.send(&format!("PRIVMSG #raw :{text}")).await?;
        b.expect(&text).await?;
        lat.push(t.elapsed().as_micros() as u32);
        tokio::time::sleep(gap).await;
    }
    lat.sort_unstable();
    Ok(lat)
}

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A raw IRC client.
struct Irc {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}
impl Irc {
    async fn send(&mut self, line: &str) -> Result<()> {
        self.w.write_all(format!("{line}\r\n").as_bytes()).await?;
        Ok(())
    }
    async fn expect(&mut self, needle: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout_at(deadline, self.r.read_line(&mut line))
                .await
                .with_context(|| format!("no IRC line with {needle:?}"))??;
            if n == 0 {
                bail!("IRC server closed the connection");
            }
            if let Some(rest) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {}", rest.trim_end())).await?;
            } else if line.contains(needle) {
                return Ok(());
            }
        }
    }
    async fn connect(port: u16, nick: &str, channel: &str) -> Result<Irc> {
        let (r, w) = client::tcp(port, None).await?.into_split();
        let mut c = Irc {
            r: BufReader::new(r),
            w,
        };
        c.send(&format!("NICK {nick}")).await?;
        c.send(&format!("USER {nick} 0 * :{nick}")).await?;
        c.expect(" 001 ").await?;
        c.send(&format!("JOIN {channel}")).await?;
        c.expect(" 366 ").await?;
        Ok(c)
    }
}
