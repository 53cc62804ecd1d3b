//! WHIP offer handling: arbitrary bytes as the body of `POST /whip/{streamId}`, through
//! UTF-8, str0m's SDP parser, our offer summary and its verdict, and negotiation on a
//! receive-only `Rtc` built like every publisher's.
//!
//! Invariants (`rill_ingest::whip::fuzz::offer`): no panic; the verdict agrees with the
//! codecs the summary saw (accepted means H.264 video and Opus audio are offered, a refusal
//! names what is missing); codec names are non-empty and trimmed; an answer we produce is
//! SDP that str0m reads back.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        rill_ingest::whip::fuzz::offer(data);
    });
}
