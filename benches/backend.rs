//! Figures for sapphire-backend (not a test: it prints, it never fails on
//! time). Run with `scripts/bench-backend` or `cargo bench --bench backend`.
//!
//! * exec -> READY=1 (sd_notify), fresh and with an existing state dir;
//! * exec -> IRC account signed on (local ngircd);
//! * RSS and PSS of one idle backend with one IRC account signed on.
#[path = "../tests/backend_support/mod.rs"]
mod backend_support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backend_support::*;
use serde_json::json;

const RUNS: usize = 10;

fn start_timed(state: &Path, sock: &Path, notify: &Path) -> (Proc, Duration) {
    let _ = std::fs::remove_file(notify);
    let n = UnixDatagram::bind(notify).unwrap();
    n.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let start = Instant::now();
    let child = Proc(
        Command::new(BACKEND)
            .arg("--listen")
            .arg(sock)
            .arg("--state-dir")
            .arg(state)
            .env("NOTIFY_SOCKET", notify)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 1024];
    loop {
        let len = n.recv(&mut buf).expect("no READY=1 within 20 s");
        if String::from_utf8_lossy(&buf[..len]).contains("READY=1") {
            return (child, start.elapsed());
        }
    }
}

/// SIGTERM, then wait for the exit (the state is saved).
fn stop(mut p: Proc) {
    unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) };
    let _ = p.0.wait();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn memory(pid: u32) -> (u64, u64) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let field = |name: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("backend bench skipped (run: cargo bench --bench backend)");
        return;
    }
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("load average at start: {}", load());
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let sock = dir.path().join("b.sock");

    let mut fresh = Vec::new();
    for i in 0..RUNS {
        let state = dir.path().join(format!("fresh{i}"));
        let (p, t) = start_timed(&state, &sock, &notify);
        fresh.push(t);
        drop(p);
    }
    println!(
        "exec -> READY=1, new state dir:      median {:?} of {RUNS}",
        median(fresh)
    );

    // One IRC account on a local ngircd.
    let irc = Ngircd::start();
    let state = dir.path().join("irc");
    let (p, _) = start_timed(&state, &sock, &notify);
    let mut c = Client::connect(&sock).await;
    c.ok("hello", json!({})).await;
    add_irc_account(&mut c, irc.port, "bench").await;
    drop(c);
    // A clean stop saves libpurple's accounts.xml.
    stop(p);

    let mut ready = Vec::new();
    let mut signed_on = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        if let Some((old, _)) = last.take() {
            stop(old);
        }
        let (p, t) = start_timed(&state, &sock, &notify);
        ready.push(t);
        let start = Instant::now() - t;
        let mut c = Client::connect(&sock).await;
        let hello = c.ok("hello", json!({})).await;
        let id = hello["accounts"][0]["id"].clone();
        if hello["accounts"][0]["status"] != "connected" {
            c.event_op(
                "account.status",
                json!({"account": id, "status": "connected"}),
            )
            .await;
        }
        signed_on.push(start.elapsed());
        last = Some((p, c));
    }
    println!(
        "exec -> READY=1, one IRC account:    median {:?} of {RUNS}",
        median(ready)
    );
    println!(
        "exec -> IRC account signed on:       median {:?} of {RUNS}",
        median(signed_on)
    );

    let (p, c) = last.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, pss) = memory(p.0.id());
    println!(
        "idle, one IRC account signed on:     RSS {} KiB, PSS {} KiB",
        rss, pss
    );
    drop(c);
    stop(p);

    // Five users at once, each with one IRC account (shared libraries are
    // shared: this is the per-user cost on a server).
    let mut running = Vec::new();
    for i in 0..5 {
        let state = dir.path().join(format!("user{i}"));
        let sock = dir.path().join(format!("user{i}.sock"));
        let (p, _) = start_timed(&state, &sock, &notify);
        let mut c = Client::connect(&sock).await;
        c.ok("hello", json!({})).await;
        add_irc_account(&mut c, irc.port, &format!("user{i}")).await;
        running.push((p, c));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pss: Vec<u64> = running.iter().map(|(p, _)| memory(p.0.id()).1).collect();
    println!(
        "five backends, one IRC account each:  PSS {} KiB each on average ({:?})",
        pss.iter().sum::<u64>() / pss.len() as u64,
        pss
    );
    println!("targets (issue 3): READY <= 50 ms, PSS <= 10 MB");
    println!("load average at end: {}", load());
}
