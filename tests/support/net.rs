//! Loopback helpers for harnesses whose servers cannot bind port 0 and say
//! which port they got (ngircd, prosody: `tests/backend_support` includes
//! this file). The proxy can: its harness (`tests/support`) starts it on
//! port 0 and reads the port from its stdout instead.

use std::process::Child;
use std::time::{Duration, Instant};

/// A loopback TCP port that was free a moment ago (check-then-bind: another
/// process may take it before the server binds it; use only for servers
/// that cannot bind port 0 themselves).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `what` (the process `child`) accepts TCP connections on
/// `port`; panics if it exits first or takes longer than `limit`.
pub fn wait_tcp(port: u16, child: &mut Child, what: &str, limit: Duration) {
    if let Err(e) = listening(port, child, what, limit) {
        panic!("{e}");
    }
}

/// Like [`wait_tcp`], but an exit before listening (e.g. a `free_port`
/// that another process took meanwhile: "address already in use") is an
/// `Err` for the caller to retry with other ports.
pub fn listening(port: u16, child: &mut Child, what: &str, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited before listening: {status}"));
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
