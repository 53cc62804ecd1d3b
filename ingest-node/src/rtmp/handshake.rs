//! The server side of the RTMP "simple" handshake (C0/C1/C2 ↔ S0/S1/S2).
//!
//! We answer every C1 as soon as C0+C1 are in: S0 = version 3, S1 = zero time, zero
//! version field and filler bytes, S2 = an echo of C1. A zero version field in S1 tells
//! digest-capable clients (librtmp in OBS, ffmpeg) that this server does not do the
//! Flash-Player-9 digest handshake, and both then proceed with the simple one; neither
//! validates S2 when publishing. C2 is read and ignored (clients fill it differently and
//! nothing depends on it).
//!
//! Invariants: at most 1 + 2×1536 bytes are ever buffered; bytes after C2 (clients often
//! send `connect` in the same segment) are returned untouched; no clock, no randomness
//! source: the S1 filler comes from the seed the owner passes in.

use bytes::{BufMut, Bytes, BytesMut};

/// Size of C1/C2/S1/S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only protocol version we speak (6 is RTMPE, which we do not).
pub const RTMP_VERSION: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("client asked for RTMP version {0}; only plain RTMP (3) is supported")]
    UnsupportedVersion(u8),
}

/// Progress of [`Handshake::feed`].
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// Need more bytes; `reply` (possibly empty) must be sent.
    InProgress { reply: Bytes },
    /// Done; `reply` must be sent, and `rest` are chunk-stream bytes that followed C2.
    Done { reply: Bytes, rest: Bytes },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for C0 + C1.
    C0C1,
    /// S0/S1/S2 sent, waiting for C2.
    C2,
    Done,
}

#[derive(Debug)]
pub struct Handshake {
    phase: Phase,
    buf: BytesMut,
    seed: u64,
}

impl Handshake {
    /// `seed` fills S1's random part (no entropy needed: nothing checks it).
    pub fn new(seed: u64) -> Self {
        Handshake {
            phase: Phase::C0C1,
            buf: BytesMut::new(),
            seed,
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Consumes client bytes. Calling it after `Done` returns the input as `rest`.
    pub fn feed(&mut self, data: &[u8]) -> Result<HandshakeStatus, HandshakeError> {
        if self.phase == Phase::Done {
            return Ok(HandshakeStatus::Done {
                reply: Bytes::new(),
                rest: Bytes::copy_from_slice(data),
            });
        }
        self.buf.extend_from_slice(data);
        let mut reply = BytesMut::new();
        if self.phase == Phase::C0C1 {
            if let Some(&version) = self.buf.first()
                && version != RTMP_VERSION
            {
                return Err(HandshakeError::UnsupportedVersion(version));
            }
            if self.buf.len() < 1 + HANDSHAKE_SIZE {
                return Ok(HandshakeStatus::InProgress {
                    reply: Bytes::new(),
                });
            }
            let c0c1 = self.buf.split_to(1 + HANDSHAKE_SIZE);
            let c1 = &c0c1[1..];
            reply.reserve(1 + 2 * HANDSHAKE_SIZE);
            reply.put_u8(RTMP_VERSION);
            // S1: time (0: we have no clock), zero "version" (= simple handshake), filler.
            reply.put_u32(0);
            reply.put_u32(0);
            let mut x = self.seed | 1;
            while reply.len() < 1 + HANDSHAKE_SIZE {
                // xorshift64: cheap filler, no dependency.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                reply.put_u8((x >> 24) as u8);
            }
            // S2 echoes C1.
            reply.put_slice(c1);
            self.phase = Phase::C2;
        }
        if self.buf.len() < HANDSHAKE_SIZE {
            return Ok(HandshakeStatus::InProgress {
                reply: reply.freeze(),
            });
        }
        let _c2 = self.buf.split_to(HANDSHAKE_SIZE);
        self.phase = Phase::Done;
        let rest = std::mem::take(&mut self.buf).freeze();
        Ok(HandshakeStatus::Done {
            reply: reply.freeze(),
            rest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c1() -> Vec<u8> {
        (0..HANDSHAKE_SIZE).map(|i| (i * 31 % 256) as u8).collect()
    }

    #[test]
    fn answers_c0c1_with_s0s1s2_echoing_c1() {
        let mut hs = Handshake::new(42);
        let mut input = vec![3];
        input.extend(c1());
        let HandshakeStatus::InProgress { reply } = hs.feed(&input).unwrap() else {
            panic!("finished without C2");
        };
        assert_eq!(reply.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(reply[0], 3);
        assert_eq!(
            &reply[5..9],
            &[0, 0, 0, 0],
            "S1 version field zero: simple handshake"
        );
        assert_eq!(&reply[1 + HANDSHAKE_SIZE..], &c1()[..]);
        assert!(!hs.is_done());
    }

    #[test]
    fn bytes_after_c2_are_returned_as_rest_in_any_split() {
        let mut all = vec![3];
        all.extend(c1());
        all.extend(vec![7u8; HANDSHAKE_SIZE]);
        all.extend_from_slice(b"\x03connect...");
        for split in [1, 2, 1000, 1537, 1538, 3073, 3074, all.len()] {
            let mut hs = Handshake::new(1);
            let mut replied = 0;
            let mut rest = None;
            for piece in all.chunks(split) {
                match hs.feed(piece).unwrap() {
                    HandshakeStatus::InProgress { reply } => replied += reply.len(),
                    HandshakeStatus::Done { reply, rest: r } => {
                        replied += reply.len();
                        rest.get_or_insert_with(BytesMut::new).extend_from_slice(&r);
                    }
                }
            }
            assert_eq!(replied, 1 + 2 * HANDSHAKE_SIZE, "split {split}");
            assert_eq!(&rest.unwrap()[..], b"\x03connect...", "split {split}");
            assert!(hs.is_done());
        }
    }

    #[test]
    fn other_versions_are_refused_at_the_first_byte() {
        let mut hs = Handshake::new(0);
        assert_eq!(hs.feed(&[6]), Err(HandshakeError::UnsupportedVersion(6)));
        let mut hs = Handshake::new(0);
        assert_eq!(
            hs.feed(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::UnsupportedVersion(b'G'))
        );
    }
}
