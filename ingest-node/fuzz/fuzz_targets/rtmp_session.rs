//! Arbitrary bytes into an RTMP session after a valid handshake: chunk demuxing, AMF0
//! commands, the publish/authorise flow and FLV parsing. The first byte picks the read
//! size. See `rill_ingest::rtmp::fuzz` for the invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rill_ingest::rtmp::fuzz::session_after_handshake(data);
});
