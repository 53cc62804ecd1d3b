//! The HLS playlist writer and reader: a program of writer operations (pushes with chosen
//! durations, discontinuities and init changes, out-of-sequence pushes, end, read back) or
//! arbitrary playlist text read as a node taking over a stream reads it.
//!
//! Invariants (`rill_ingest::package::fuzz::playlist`): no panic; after every step the text
//! matches a model of everything pushed: header tags, media sequence (never down, no holes),
//! target duration (>= ceil of every EXTINF and of the configured target, never down), maps
//! and discontinuities where due, the discontinuity sequence, PDT and EXTINF per segment,
//! ENDLIST once ended; refused pushes change nothing; written text reads back to the same
//! segments; accepted text re-renders to text that reads back identically.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        rill_ingest::package::fuzz::playlist(data);
    });
}
