//! WebSocket frame boundaries (RFC 6455 §5.2) and the close frames the proxy
//! sends itself.
//!
//! The relay copies bytes without decoding payloads, but it follows frame
//! headers (a few bytes of state per direction) for two reasons: a frame
//! larger than the configured limit ends the relay, and when the proxy ends a
//! relay it sends each side a close frame between frames instead of cutting
//! one in half.

/// Why the proxy ends a relay itself: sent to both sides as a close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Close {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

/// The proxy shuts down.
pub(crate) const GOING_AWAY: Close = Close {
    code: 1001,
    reason: "server shutting down",
};

/// The session behind the relay ended: signed out, password changed, user
/// disabled or deleted. (1008: policy violation.)
pub(crate) const SESSION_ENDED: Close = Close {
    code: 1008,
    reason: "session ended",
};

/// Follows the frame structure of a byte stream (RFC 6455 §5.2).
#[derive(Debug)]
pub(crate) struct FrameTracker {
    header: [u8; 14],
    have: usize,
    /// Payload bytes left in the current frame; `None` while in a header.
    remaining: Option<u64>,
    max_payload: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("frame of {0} bytes is over the limit")]
pub(crate) struct FrameTooLarge(pub(crate) u64);

impl FrameTracker {
    pub(crate) fn new(max_payload: u64) -> Self {
        FrameTracker {
            header: [0; 14],
            have: 0,
            remaining: None,
            max_payload,
        }
    }

    /// Payload bytes left in the current frame; `None` while in a header.
    pub(crate) fn remaining(&self) -> Option<u64> {
        self.remaining
    }

    /// True between frames.
    pub(crate) fn at_boundary(&self) -> bool {
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
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<(), FrameTooLarge> {
        while !data.is_empty() {
            let n = self.step(data)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Follows `data` only until the next frame boundary; returns how many
    /// bytes that took (all of `data` if no boundary is reached).
    pub(crate) fn feed_to_boundary(&mut self, mut data: &[u8]) -> Result<usize, FrameTooLarge> {
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
pub(crate) fn close_frame(code: u16, reason: &str, masked: bool) -> Vec<u8> {
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
