//! RADIUS packets on a byte stream (RFC 6613 §2.6.4 applied to TLS by RFC
//! 6614): there is no record boundary, so each packet is cut by the Length
//! field of its own header (octets 2–3). A Length below 20 or above 4096 means
//! the stream can no longer be framed: the connection must be closed.
//!
//! Pure code: bytes in, whole packets out.

use crate::radius::packet::{HEADER_LEN, MAX_PACKET_LEN};

/// Why the stream cannot be framed any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The Length field is below the 20-octet header.
    #[error("Length field below 20")]
    TooShort,
    /// The Length field is above 4096.
    #[error("Length field above 4096")]
    TooLong,
}

impl FrameError {
    /// The drop reason, the same labels as [`crate::radius::packet::DecodeError`].
    pub fn reason(self) -> &'static str {
        match self {
            FrameError::TooShort => "too_short",
            FrameError::TooLong => "too_long",
        }
    }
}

/// Accumulates stream bytes and hands out whole packets.
#[derive(Debug, Default)]
pub struct Framer {
    buffer: Vec<u8>,
    start: usize,
}

impl Framer {
    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        // Reclaim consumed space before growing.
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start >= MAX_PACKET_LEN {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole packet, `None` until enough bytes arrived.
    pub fn next_packet(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let pending = &self.buffer[self.start..];
        let Some(length) = pending.get(2..4) else {
            return Ok(None);
        };
        let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
        if length < HEADER_LEN {
            return Err(FrameError::TooShort);
        }
        if length > MAX_PACKET_LEN {
            return Err(FrameError::TooLong);
        }
        if pending.len() < length {
            return Ok(None);
        }
        let begin = self.start;
        self.start += length;
        Ok(Some(&self.buffer[begin..begin + length]))
    }

    /// Octets of an incomplete packet held.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(id: u8, len: u16) -> Vec<u8> {
        let mut bytes = vec![1, id];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.resize(usize::from(len), id);
        bytes
    }

    #[test]
    fn packets_are_cut_by_their_length_field_across_any_split() {
        let mut stream = packet(1, 20);
        stream.extend(packet(2, 100));
        stream.extend(packet(3, 4096));
        for chunk in [1, 3, 7, 20, 64, 5000] {
            let mut framer = Framer::default();
            let mut seen = Vec::new();
            for piece in stream.chunks(chunk) {
                framer.extend(piece);
                while let Some(packet) = framer.next_packet().unwrap() {
                    seen.push((packet[1], packet.len()));
                }
            }
            assert_eq!(seen, [(1, 20), (2, 100), (3, 4096)], "chunk {chunk}");
            assert_eq!(framer.pending(), 0);
        }
    }

    #[test]
    fn impossible_lengths_end_the_stream() {
        let mut framer = Framer::default();
        framer.extend(&[1, 1, 0, 19]);
        assert_eq!(framer.next_packet(), Err(FrameError::TooShort));
        let mut framer = Framer::default();
        framer.extend(&[1, 1, 0x10, 0x01]);
        assert_eq!(framer.next_packet(), Err(FrameError::TooLong));
    }

    #[test]
    fn a_partial_header_waits() {
        let mut framer = Framer::default();
        framer.extend(&[1, 1, 0]);
        assert_eq!(framer.next_packet(), Ok(None));
        assert_eq!(framer.pending(), 3);
    }
}
