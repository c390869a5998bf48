//! The process contract: systemd socket activation (LISTEN_FDS), state dir
//! from $STATE_DIRECTORY, sd_notify READY/STATUS/STOPPING, SIGTERM.
mod backend_support;

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backend_support::*;
use serde_json::json;

fn recv_until(sock: &UnixDatagram, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = vec![0u8; 4096];
    let mut all = String::new();
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                all.push_str(&msg);
                all.push('\n');
                if msg.contains(needle) {
                    return msg;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    panic!("no {needle:?} from sd_notify; got:\n{all}");
}

#[tokio::test]
async fn socket_activation_sd_notify_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let state = dir.path().join("state");

    // As systemd does: the socket is fd 3, LISTEN_PID is the backend's pid
    // (the shell execs the backend, keeping its pid).
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0""#, BACKEND])
        .env("STATE_DIRECTORY", &state)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: dup2 is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Proc(cmd.spawn().unwrap());
    drop(listener);

    recv_until(&notify, "READY=1");
    assert!(
        state.join("sapphire.db").exists(),
        "state not in $STATE_DIRECTORY"
    );
    assert!(state.join("purple").is_dir());

    let mut c = Client::connect(&sock_path).await;
    let hello = c.ok("hello", json!({})).await;
    assert_eq!(hello["protocol"], 2);
    let status = recv_until(&notify, "1 clients");
    assert!(status.contains("STATUS=0/0 accounts connected"), "{status}");

    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    match c.frame().await {
        Frame::Closed(code) => assert_eq!(code, Some(1001)),
        Frame::Json(v) => panic!("unexpected {v}"),
    }
    recv_until(&notify, "STOPPING=1");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_second_backend_on_the_same_state_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let out = Command::new(BACKEND)
        .arg("--listen")
        .arg(dir.path().join("other.sock"))
        .arg("--state-dir")
        .arg(&backend.state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another sapphire-backend"), "{err}");
    // The first one is unaffected.
    let mut c = backend.connect().await;
    c.ok("hello", json!({})).await;
}
