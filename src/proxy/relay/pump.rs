//! Copying one direction of a relay.
//!
//! Both handshakes are done before the relay starts (see `handshake.rs`),
//! with no extension negotiated, so the two connections carry the same
//! frames: the browser's masked frames are valid client frames for the
//! backend and the backend's unmasked frames are valid server frames for the
//! browser. Like nginx, a pump copies bytes without decoding or re-encoding
//! payloads; it follows frame boundaries ([`FrameTracker`]) to enforce the
//! size limit and to stop between frames.

use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::frames::{close_frame, Close, FrameTooLarge, FrameTracker};

/// What each direction waits for data with: all an idle WebSocket holds.
const IDLE_BUF: usize = 512;
/// Size of the copy buffer a direction takes while data flows (allocated
/// when a read fills `IDLE_BUF`, released before waiting again), so that
/// thousands of idle connections do not each keep 2 × 32 KiB.
const BUF_SIZE: usize = 32 * 1024;

/// How long a stopped relay waits for the peer to close after our close frame.
const LINGER: Duration = Duration::from_secs(1);

/// How long, at shutdown, a half-sent frame may take to finish before the
/// connection is cut.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Resolves with the reason once the relay is told to stop; never resolves
/// if its sender is gone.
async fn stop_requested(rx: &mut watch::Receiver<Option<Close>>) -> Close {
    let close = match rx.wait_for(Option::is_some).await {
        Ok(v) => *v,
        Err(_) => None,
    };
    match close {
        Some(c) => c,
        None => std::future::pending().await,
    }
}

/// Why one direction of the relay stopped (read through `Debug`, in the
/// relay's debug log).
#[derive(Debug)]
#[allow(dead_code)]
pub(crate) enum End {
    /// The reading side closed its connection.
    Eof,
    /// The proxy ended the relay (shutdown, session ended); a close frame
    /// was sent on.
    Stopped,
    Error(std::io::Error),
    TooLarge(FrameTooLarge),
}

/// Copies one direction (`already_sent` went ahead of it) until EOF, an
/// error, an oversized frame, or a stop request: then it finishes the current
/// frame and sends a close frame with the stop's code (masked when it goes
/// `to_backend`).
pub(crate) async fn pump<R, W>(
    mut from: R,
    mut to: W,
    max_frame: u64,
    to_backend: bool,
    mut stop: watch::Receiver<Option<Close>>,
    already_sent: &[u8],
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut tracker = FrameTracker::new(max_frame);
    if let Err(e) = tracker.feed(already_sent) {
        return End::TooLarge(e);
    }
    let mut small = [0u8; IDLE_BUF];
    // One stop future for the pump's life: making a new one per read
    // registered and removed a waiter in the watch channel each time.
    let mut stop_fut = Box::pin(stop_requested(&mut stop));
    let end = 'relay: loop {
        let n = tokio::select! {
            biased;
            close = &mut stop_fut => {
                // Frames to the backend are client frames: masked.
                let frame = close_frame(close.code, close.reason, to_backend);
                break drain_and_close(&mut from, &mut to, &mut tracker, &mut small, &frame).await
            }
            r = from.read(&mut small) => match r {
                Ok(0) => break End::Eof,
                Ok(n) => n,
                Err(e) => break End::Error(e),
            },
        };
        if n < IDLE_BUF {
            if let Some(end) = forward(&mut tracker, &mut to, &small[..n]).await {
                break end;
            }
            continue;
        }
        // The small buffer filled up: more is likely waiting. Move what is
        // ready through a big buffer, without waiting, then let it go.
        let mut big = vec![0u8; BUF_SIZE];
        big[..n].copy_from_slice(&small);
        let mut filled = n;
        loop {
            let mut stop = None;
            while filled < big.len() {
                match from.read(&mut big[filled..]).now_or_never() {
                    None => break,
                    Some(Ok(0)) => {
                        stop = Some(End::Eof);
                        break;
                    }
                    Some(Ok(m)) => filled += m,
                    Some(Err(e)) => {
                        stop = Some(End::Error(e));
                        break;
                    }
                }
            }
            if filled > 0 {
                if let Some(end) = forward(&mut tracker, &mut to, &big[..filled]).await {
                    break 'relay end;
                }
            }
            if let Some(end) = stop {
                break 'relay end;
            }
            if filled < big.len() {
                // Nothing more is ready: back to waiting with the small buffer.
                break;
            }
            filled = 0;
        }
    };
    drop(stop_fut);
    // The other side may have closed because the other direction already
    // told it to stop: this side still owes its peer the close frame.
    let pending_close = *stop.borrow();
    let end = match (end, pending_close) {
        (End::Eof, Some(close)) if tracker.at_boundary() => {
            let frame = close_frame(close.code, close.reason, to_backend);
            match to.write_all(&frame).await {
                Ok(()) => End::Stopped,
                Err(e) => End::Error(e),
            }
        }
        (end, _) => end,
    };
    let _ = to.shutdown().await;
    if matches!(end, End::Stopped) {
        // Lingering close: read (and drop) what the peer still sends, its
        // close reply above all, until it closes too. Closing a socket with
        // unread data makes the kernel reset the connection, and a reset can
        // destroy our close frame before the browser has read it.
        let mut sink = [0u8; IDLE_BUF];
        let _ = tokio::time::timeout(LINGER, async {
            while let Ok(n) = from.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
    end
}

/// Follows `data`'s frames and writes it on; `Some` ends the relay.
async fn forward<W>(tracker: &mut FrameTracker, to: &mut W, data: &[u8]) -> Option<End>
where
    W: AsyncWrite + Unpin,
{
    if let Err(e) = tracker.feed(data) {
        return Some(End::TooLarge(e));
    }
    if let Err(e) = to.write_all(data).await {
        return Some(End::Error(e));
    }
    None
}

async fn drain_and_close<R, W>(
    from: &mut R,
    to: &mut W,
    tracker: &mut FrameTracker,
    buf: &mut [u8],
    closing: &[u8],
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let drain = async {
        while !tracker.at_boundary() {
            // Read at most what the current frame still needs.
            let want = match tracker.remaining() {
                Some(rem) => rem.min(buf.len() as u64) as usize,
                None => 1,
            };
            let n = from.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let used = tracker
                .feed_to_boundary(&buf[..n])
                .map_err(std::io::Error::other)?;
            to.write_all(&buf[..used]).await?;
        }
        to.write_all(closing).await?;
        to.flush().await
    };
    match tokio::time::timeout(DRAIN_LIMIT, drain).await {
        Ok(Ok(())) => End::Stopped,
        Ok(Err(e)) => End::Error(e),
        Err(_) => End::Error(std::io::ErrorKind::TimedOut.into()),
    }
}
