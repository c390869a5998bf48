//! Test fixture, not product code: a WebSocket echo server on a Unix socket
//! that takes the same arguments as `sapphire-backend`
//! (`--listen PATH --state-dir DIR`). The proxy's tests use it to check the
//! relay and the spawn launcher without libpurple. It writes its pid to
//! `DIR/pid` and answers the text message `pid` with its pid.

use futures_util::{SinkExt, StreamExt};
use tokio::net::UnixListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        let i = args.iter().position(|a| a == name).expect(name);
        args[i + 1].clone()
    };
    let (listen, state) = (arg("--listen"), arg("--state-dir"));
    let _ = std::fs::remove_file(&listen);
    let listener = UnixListener::bind(&listen).expect("bind");
    std::fs::write(format!("{state}/pid"), std::process::id().to_string()).expect("pid file");
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                let reply = match msg {
                    Message::Text(t) if t.as_str() == "pid" => {
                        Message::text(std::process::id().to_string())
                    }
                    Message::Text(_) | Message::Binary(_) => msg,
                    Message::Close(_) => break,
                    _ => continue,
                };
                if ws.send(reply).await.is_err() {
                    break;
                }
            }
        });
    }
}
