//! REST JSON bodies: the first byte picks create stream, update stream, create channel,
//! chat message or reaction; the rest is the body, decoded into the same serde types and
//! validated by the same rules as the handlers.
//!
//! Invariants (`rill_core::fuzz::rest_body`): no panic; what passes validation passes it
//! again unchanged; a created stream's status follows `scheduledAt`, a patch bumps the
//! version; every stored value serialises to JSON that reads back equal and re-serialises
//! to the same text.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        rill_core::fuzz::rest_body(data);
    });
}
