//! The WebSocket relay between a browser and its user's backend.
//!
//! Both handshakes are done before the relay starts (see `http.rs`), with
//! no extension negotiated, so the two connections carry the same frames:
//! the browser's masked frames are valid client frames for the backend and
//! the backend's unmasked frames are valid server frames for the browser.
//! Like nginx, the relay copies bytes without decoding or re-encoding
//! payloads. It does track frame boundaries (a few bytes of header state per
//! direction) for two reasons: a frame larger than the configured limit ends
//! the relay, and at shutdown the proxy can send each side a close frame
//! (1001, "going away") between frames instead of cutting one in half.

use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

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

/// Why the proxy ends a relay itself: sent to both sides as a close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

/// The proxy shuts down.
pub const GOING_AWAY: Close = Close {
    code: 1001,
    reason: "server shutting down",
};

/// The session behind the relay ended: signed out, password changed, user
/// disabled or deleted. (1008: policy violation.)
pub const SESSION_ENDED: Close = Close {
    code: 1008,
    reason: "session ended",
};

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

/// Follows the frame structure of a byte stream (RFC 6455 §5.2).
#[derive(Debug)]
pub struct FrameTracker {
    header: [u8; 14],
    have: usize,
    /// Payload bytes left in the current frame; `None` while in a header.
    remaining: Option<u64>,
    max_payload: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("frame of {0} bytes is over the limit")]
pub struct FrameTooLarge(pub u64);

impl FrameTracker {
    pub fn new(max_payload: u64) -> Self {
        FrameTracker {
            header: [0; 14],
            have: 0,
            remaining: None,
            max_payload,
        }
    }

    /// True between frames.
    pub fn at_boundary(&self) -> bool {
        self.remaining.is_none() && self.have == 0
    }

    fn header_len(&self) -> Option<usize> {
        if self.have < 2 {
            return None;
        }
        let masked = self.header[1] & 0x80 != 0;
        let ext = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        Some(2 + ext + if masked { 4 } else { 0 })
    }

    fn payload_len(&self) -> u64 {
        match self.header[1] & 0x7f {
            126 => u16::from_be_bytes([self.header[2], self.header[3]]) as u64,
            127 => u64::from_be_bytes(self.header[2..10].try_into().unwrap()),
            n => n as u64,
        }
    }

    /// Consumes bytes up to and including the end of the current frame, or
    /// all of `data` if the frame goes on; returns how many were consumed.
    fn step(&mut self, data: &[u8]) -> Result<usize, FrameTooLarge> {
        if let Some(rem) = self.remaining {
            let n = (rem.min(data.len() as u64)) as usize;
            let left = rem - n as u64;
            self.remaining = if left == 0 { None } else { Some(left) };
            return Ok(n);
        }
        let mut used = 0;
        while used < data.len() {
            self.header[self.have] = data[used];
            self.have += 1;
            used += 1;
            if let Some(len) = self.header_len() {
                if self.have == len {
                    let payload = self.payload_len();
                    if payload > self.max_payload {
                        return Err(FrameTooLarge(payload));
                    }
                    self.have = 0;
                    self.remaining = (payload > 0).then_some(payload);
                    return Ok(used);
                }
            }
        }
        Ok(used)
    }

    /// Follows all of `data`.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), FrameTooLarge> {
        while !data.is_empty() {
            let n = self.step(data)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Follows `data` only until the next frame boundary; returns how many
    /// bytes that took (all of `data` if no boundary is reached).
    pub fn feed_to_boundary(&mut self, mut data: &[u8]) -> Result<usize, FrameTooLarge> {
        let total = data.len();
        while !data.is_empty() {
            let n = self.step(data)?;
            data = &data[n..];
            if self.at_boundary() {
                break;
            }
        }
        Ok(total - data.len())
    }
}

/// A close frame with `code`; masked with a random key when it goes to the
/// backend (client-to-server frames must be masked).
pub fn close_frame(code: u16, reason: &str, masked: bool) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    let mut frame = vec![0x88, payload.len() as u8];
    if masked {
        frame[1] |= 0x80;
        let key: [u8; 4] = rand::random();
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(&payload);
    }
    frame
}

/// Why one direction of the relay stopped.
#[derive(Debug)]
pub enum End {
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
pub async fn pump<R, W>(
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
            let want = match tracker.remaining {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload_len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match payload_len {
            0..=125 => f.push(m | payload_len as u8),
            126..=65535 => {
                f.push(m | 126);
                f.extend_from_slice(&(payload_len as u16).to_be_bytes());
            }
            _ => {
                f.push(m | 127);
                f.extend_from_slice(&(payload_len as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7u8, payload_len));
        f
    }

    #[test]
    fn tracks_boundaries_byte_by_byte() {
        for (len, masked) in [(0, false), (5, true), (300, false), (70_000, true)] {
            let f = frame(len, masked);
            let mut t = FrameTracker::new(1 << 20);
            for (i, b) in f.iter().enumerate() {
                assert!(i == 0 || !t.at_boundary(), "len {len} byte {i}");
                t.feed(std::slice::from_ref(b)).unwrap();
            }
            assert!(t.at_boundary(), "len {len}");
        }
    }

    #[test]
    fn feed_to_boundary_stops_between_frames() {
        let mut stream = frame(10, true);
        let first = stream.len();
        stream.extend(frame(3, true));
        let mut t = FrameTracker::new(100);
        assert_eq!(t.feed_to_boundary(&stream).unwrap(), first);
        assert!(t.at_boundary());
        assert_eq!(
            t.feed_to_boundary(&stream[first..]).unwrap(),
            stream.len() - first
        );
    }

    #[test]
    fn refuses_oversized_frames() {
        let mut t = FrameTracker::new(1000);
        assert_eq!(t.feed(&frame(1001, false)[..4]), Err(FrameTooLarge(1001)));
        let mut t = FrameTracker::new(1000);
        t.feed(&frame(1000, false)).unwrap();
        assert!(t.at_boundary());
    }

    #[test]
    fn close_frames_are_well_formed() {
        let f = close_frame(1001, "bye", false);
        assert_eq!(f, [0x88, 5, 0x03, 0xe9, b'b', b'y', b'e']);
        let m = close_frame(1001, "bye", true);
        assert_eq!(m[1], 0x80 | 5);
        let key = &m[2..6];
        let unmasked: Vec<u8> = m[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(unmasked, f[2..]);
    }
}
