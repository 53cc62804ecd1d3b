//! AMF0 and FLV straight into their decoders, without the session's handshake, chunking and
//! command flow in front: the AMF0 codec (even first byte) or a sequence of video, audio and
//! aggregate messages through one FLV demuxer (odd first byte), including the avcC, SPS and
//! AudioSpecificConfig parsers behind it.
//!
//! Invariants (`rill_ingest::rtmp::fuzz::flv_amf0`): no panic; AMF0 re-encodes to a stable
//! encoding; emitted avcC records parse and say 4-byte NAL lengths; emitted frames are valid
//! 4-byte length-prefixed NAL units with the message's time; no frame before its sequence
//! header; audio configs parse and have a channel; aggregate parts cover the message.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        rill_ingest::rtmp::fuzz::flv_amf0(data);
    });
}
