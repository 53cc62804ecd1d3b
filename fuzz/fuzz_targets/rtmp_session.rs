//! RTMP after a valid handshake: arbitrary bytes into a publish session, so chunk
//! demuxing, protocol control messages, AMF0 commands, the connect/publish/authorise flow
//! and FLV parsing, with the first byte picking the read size.
//!
//! Invariants (`rill_ingest::rtmp::fuzz::session_after_handshake`): no panic; no event after
//! End, End at most once.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        rill_ingest::rtmp::fuzz::session_after_handshake(data);
    });
}
