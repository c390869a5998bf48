//! The proxy-wide stop flag, watched by the accept loops, the connections,
//! the relays and the spawn launcher.

use tokio::sync::watch;

/// Resolves once the flag is set (at once if it already is).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
