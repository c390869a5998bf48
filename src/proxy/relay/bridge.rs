//! Runs one relay: unwraps the upgraded browser connection and pumps both
//! directions between it and the backend's socket until either side closes
//! or the proxy ends the relay (shutdown: 1001; session ended: 1008).

use std::time::Duration;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tracing::{debug, error, info};

use super::frames::Close;
use super::pump::pump;
use super::registry::RelayGuard;

/// The browser connection as the server hands it to hyper.
pub(crate) type ClientIo = TlsStream<TcpStream>;

/// When one direction ends, how long the other gets to finish.
const LINGER: Duration = Duration::from_secs(5);

/// Relays `upgraded` to `backend` (whose handshake left `backend_leftover`
/// unread). The relay stays registered as long as `guard` lives: until this
/// returns, on every path.
pub(crate) async fn relay(
    guard: RelayGuard,
    upgraded: Upgraded,
    backend: UnixStream,
    backend_leftover: Vec<u8>,
    max_frame: u64,
) {
    let user = guard.session().user.clone();
    info!(%user, "WebSocket relay open");
    // Unwrap hyper's wrapper to relay straight between the TLS stream and the
    // Unix socket; bytes hyper had already read go first.
    // (Copy the leftover bytes out: the `Bytes` would keep hyper's whole read
    // buffer alive for the life of the relay.)
    let (browser, browser_leftover) = match upgraded.downcast::<TokioIo<ClientIo>>() {
        Ok(parts) => (parts.io.into_inner(), parts.read_buf.to_vec()),
        Err(_) => {
            error!(%user, "unexpected upgraded connection type");
            return;
        }
    };
    streams(
        browser,
        browser_leftover,
        backend,
        backend_leftover,
        max_frame,
        guard.stop_signal(),
    )
    .await;
    drop(guard);
    info!(%user, "WebSocket relay closed");
}

async fn streams(
    browser: ClientIo,
    browser_leftover: Vec<u8>,
    mut backend: UnixStream,
    backend_leftover: Vec<u8>,
    max: u64,
    stop: watch::Receiver<Option<Close>>,
) {
    let (browser_r, mut browser_w) = tokio::io::split(browser);
    if !browser_leftover.is_empty() && backend.write_all(&browser_leftover).await.is_err() {
        return;
    }
    if !backend_leftover.is_empty() && browser_w.write_all(&backend_leftover).await.is_err() {
        return;
    }
    // Leftovers are whole frames in practice, but if they ended mid-frame
    // the trackers would be misaligned: count them in.
    let (backend_r, backend_w) = backend.into_split();
    let up = pump(
        browser_r,
        backend_w,
        max,
        true,
        stop.clone(),
        &browser_leftover,
    );
    let down = pump(backend_r, browser_w, max, false, stop, &backend_leftover);
    tokio::pin!(up, down);
    tokio::select! {
        end = &mut up => {
            debug!("browser to backend ended: {end:?}");
            let _ = tokio::time::timeout(LINGER, down).await;
        }
        end = &mut down => {
            debug!("backend to browser ended: {end:?}");
            let _ = tokio::time::timeout(LINGER, up).await;
        }
    }
}
