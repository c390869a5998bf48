//! The two WebSocket handshakes around a relay: the `Sec-WebSocket-Accept`
//! the browser gets, and the proxy's own handshake on the backend's socket.

use std::time::Duration;

use base64::Engine;
use sha1_smol::Sha1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Largest backend handshake response, in bytes.
const MAX_BACKEND_HANDSHAKE: usize = 8 * 1024;
const BACKEND_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Sec-WebSocket-Accept` value for a key (RFC 6455 §4.2.2).
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("answer over {MAX_BACKEND_HANDSHAKE} bytes")]
    TooLong,
    #[error("unexpected answer: {0}")]
    Bad(String),
}

/// Opens the WebSocket on the backend's socket with the browser's key, no
/// extensions (so frames pass through unchanged), and the browser's
/// subprotocols. Returns the stream, bytes read past the handshake, and the
/// subprotocol the backend chose.
pub(crate) async fn backend_handshake(
    mut s: UnixStream,
    key: &str,
    protocol: Option<&str>,
) -> Result<(UnixStream, Vec<u8>, Option<String>), HandshakeError> {
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(p) = protocol {
        request.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        s.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(HandshakeError::Bad("connection closed".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let leftover = buf.split_off(end + 4);
                return Ok((buf, leftover));
            }
            if buf.len() > MAX_BACKEND_HANDSHAKE {
                return Err(HandshakeError::TooLong);
            }
        }
    };
    let (head, leftover) = tokio::time::timeout(BACKEND_HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(&head)
        .map_err(|e| HandshakeError::Bad(e.to_string()))?;
    if parsed.code != Some(101) {
        return Err(HandshakeError::Bad(format!("status {:?}", parsed.code)));
    }
    let get = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    if get("sec-websocket-accept") != Some(accept_key(key).as_str()) {
        return Err(HandshakeError::Bad("wrong Sec-WebSocket-Accept".into()));
    }
    if get("sec-websocket-extensions").is_some() {
        return Err(HandshakeError::Bad(
            "backend negotiated an extension".into(),
        ));
    }
    let chosen = get("sec-websocket-protocol").map(str::to_owned);
    Ok((s, leftover, chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
