//! RadSec stream framing (RFC 6614 §2.1, RFC 6613 §2.6.4): a TLS byte stream
//! cut into arbitrary read-sized chunks. Every packet handed out has the length
//! its header states, packets come out in stream order and concatenate back
//! to the stream, and a bad Length field is an error, never a panic or a stall.
//!
//! Input: one octet seeding the chunk sizes, then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::radius::Packet;
use rampart::radius::radsec::framing::Framer;

/// Chunk sizes from a small xorshift, so one input always cuts the same way
/// and sizes range from 1 octet to several packets.
fn chunks(seed: u8, stream: &[u8]) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 0x100;
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = match state % 4 {
            0 => 1,
            1 => (state >> 8) as usize % 32 + 1,
            2 => (state >> 8) as usize % 512 + 1,
            _ => (state >> 8) as usize % 9000 + 1,
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut framer = Framer::default();
    let mut out = Vec::new();
    'chunks: for chunk in chunks(seed, stream) {
        framer.extend(chunk);
        loop {
            match framer.next_packet() {
                Ok(Some(packet)) => {
                    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
                    assert_eq!(packet.len(), length);
                    assert!((20..=4096).contains(&length));
                    let _ = Packet::decode(packet);
                    out.extend_from_slice(packet);
                }
                Ok(None) => break,
                Err(_) => break 'chunks,
            }
        }
    }
    assert!(stream.starts_with(&out));
    assert!(framer.pending() <= stream.len() - out.len());
    // Nothing left that could still be framed: a whole packet never stalls.
    if let Ok(Some(_)) = framer.next_packet() {
        panic!("a whole packet was left in the buffer");
    }
});
