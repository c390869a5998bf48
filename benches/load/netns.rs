//! A private network namespace for the benchmark, so that the sign-in
//! section can flood from a whole IPv6 /64 (issue #11: the proxy limits
//! IPv6 sources by /64, and one /64 must count as one address).
//!
//! The machine itself has only `::1` on loopback, and routing a /64 to `lo`
//! would change the shared machine's network configuration. Inside a new
//! network namespace (root only) the benchmark may: it brings `lo` up, puts
//! `fd00:5a::1/64` on it, routes the whole /64 locally and lets sockets bind
//! any address of it (`ip_nonlocal_bind`, a per-namespace setting). Every
//! process the benchmark starts inherits the namespace; everything it
//! measures was on loopback before and still is.

use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// The proxy's IPv6 address inside the namespace.
pub const V6_SERVER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x5a, 0, 0, 0, 0, 0, 1);

static READY: AtomicBool = AtomicBool::new(false);

/// Whether the /64 is set up (the IPv6 flood row can run).
pub fn v6_ready() -> bool {
    READY.load(Ordering::Relaxed)
}

/// The `n`th source address of the /64 flood: each attempt its own
/// address, spread over the interface-identifier half.
pub fn v6_source(n: u64) -> IpAddr {
    let iid = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 2;
    IpAddr::V6(Ipv6Addr::new(
        0xfd00,
        0x5a,
        0,
        0,
        (iid >> 48) as u16,
        (iid >> 32) as u16,
        (iid >> 16) as u16,
        iid as u16,
    ))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Moves this process into a new network namespace with the /64 on `lo`.
/// Call before any thread is started (a namespace is per thread until
/// then inherited). On failure the process stays where it was.
pub fn enter() -> Result<(), String> {
    // SAFETY: unshare takes no pointers; called from main before the
    // runtime starts, so this single thread moves the whole process.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {} (needs root)",
            std::io::Error::last_os_error()
        ));
    }
    ip(&["link", "set", "lo", "up"])?;
    ip(&["-6", "addr", "add", "fd00:5a::1/64", "dev", "lo", "nodad"])?;
    ip(&[
        "-6",
        "route",
        "add",
        "local",
        "fd00:5a::/64",
        "dev",
        "lo",
        "table",
        "local",
    ])?;
    std::fs::write("/proc/sys/net/ipv6/ip_nonlocal_bind", "1")
        .map_err(|e| format!("net.ipv6.ip_nonlocal_bind: {e}"))?;
    READY.store(true, Ordering::Relaxed);
    Ok(())
}
