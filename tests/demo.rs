//! The README's first command, end to end with the real backend: the demo
//! prints credentials, a client signs in with them over TLS, opens /ws, and
//! the user's own libpurple backend (spawned by the proxy) answers `hello`.

mod support;

use std::io::Read;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn demo_signs_in_and_reaches_the_real_backend() {
    let dir = tempfile::tempdir().unwrap();
    // No --backend-bin: the demo uses the sapphire-backend built next to it.
    // Port 0: the demo prints the port the kernel chose.
    let mut child = std::process::Command::new(PROXY)
        .args(["--demo", "--port", "0"])
        .args(["--state-dir", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 512];
    while !text.lines().any(|l| l.starts_with("password: ")) || !text.ends_with('\n') {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "demo exited early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("url: https://127.0.0.1:"))
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("url line with the bound port");
    let c = Client::new(port, &dir.path().join("tls.crt"))
        .signed_in("demo", &password)
        .await;
    let mut ws = c
        .websocket(Some(&c.origin()))
        .await
        .expect("relay to the backend");
    ws.send(Message::text(r#"{"id":1,"op":"hello"}"#))
        .await
        .unwrap();
    let reply = loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("hello reply in time")
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if v["re"] == 1 {
            break v;
        }
    };
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["protocol"],
        sapphire::backend::protocol::PROTOCOL_VERSION
    );
    // the backend keeps its state under the demo directory
    assert!(dir.path().join("backends/demo").is_dir());
    drop(ws);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
