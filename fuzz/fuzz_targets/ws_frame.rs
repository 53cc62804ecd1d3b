//! WebSocket client frames: arbitrary text as a frame body, through `parse_frame` and the
//! validation the socket functions apply (chat text, questions, reactions).
//!
//! Invariants (`rill_core::fuzz::client_frame`): no panic; oversized frames are refused as
//! `frame_too_large`; refusals have known codes and well-formed error frames; an accepted
//! frame written back as JSON parses to the same frame; validated text is stable under
//! validation; stored messages, questions and reactions read back from JSON unchanged.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        rill_core::fuzz::client_frame(data);
    });
}
