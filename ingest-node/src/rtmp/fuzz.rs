//! The fuzz harness: arbitrary bytes fed to a [`Session`] after a valid handshake.
//!
//! Shared by the cargo-fuzz target (`ingest-node/fuzz/fuzz_targets/rtmp_session.rs`) and by
//! the unit tests below, which run it over a few thousand pseudo-random and mutated inputs
//! on stable Rust. The first input byte picks the read size so that chunk boundaries land
//! everywhere; publish requests are accepted or refused depending on the key, so both
//! paths get exercised.
//!
//! Besides "no panic", the harness asserts the session's event invariants: nothing after
//! End, End at most once.

use super::session::{Session, SessionConfig, SessionEvent};
use crate::media::MediaEvent;
use crate::publish::Refusal;

/// What one run reached (lets tests check that inputs get past the early states).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FuzzOutcome {
    pub publish_requests: usize,
    pub media_events: usize,
    pub ended: bool,
}

/// Runs a session over `data` after a valid handshake. Panics only on a session bug.
pub fn session_after_handshake(data: &[u8]) -> FuzzOutcome {
    let mut session = Session::new(SessionConfig::default());
    let mut handshake = vec![3u8];
    handshake.resize(1 + 2 * super::handshake::HANDSHAKE_SIZE, 0x5A);
    let handshake_ok = session.handle_input(&handshake).is_ok() && session.is_handshake_done();
    assert!(handshake_ok, "valid handshake refused");
    let mut outcome = FuzzOutcome::default();
    let Some((first, body)) = data.split_first() else {
        return outcome;
    };
    let step = 1 + usize::from(*first) * 17;
    for piece in body.chunks(step) {
        let r = session.handle_input(piece);
        drain(&mut session, &mut outcome);
        if r.is_err() || session.is_closed() {
            break;
        }
    }
    session.finish();
    drain(&mut session, &mut outcome);
    outcome
}

fn drain(session: &mut Session, outcome: &mut FuzzOutcome) {
    loop {
        while session.poll_output().is_some() {}
        match session.poll_event() {
            Some(SessionEvent::PublishRequested { stream_key, .. }) => {
                outcome.publish_requests += 1;
                if stream_key.expose().len() % 4 == 3 {
                    session.reject_publish(&Refusal::BadKey);
                } else {
                    // An error here closes the session; later events are still checked.
                    let _ = session.accept_publish();
                }
            }
            Some(SessionEvent::Media(ev)) => {
                assert!(!outcome.ended, "event after End: {ev:?}");
                outcome.media_events += 1;
                if ev == MediaEvent::End {
                    outcome.ended = true;
                }
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Client;
    use super::*;
    use crate::rtmp::flv::tests as flv_t;

    /// xorshift64*: deterministic, dependency-free input generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// Post-handshake bytes of a complete, valid publish.
    fn valid_script() -> Vec<u8> {
        let mut c = Client::new();
        let mut v = vec![0u8]; // split byte: one read per byte... overwritten by callers
        v.extend(c.connect_and_publish("live", "good-key"));
        v.extend(c.metadata(640, 360, 30.0, 800.0));
        v.extend(c.video(0, &flv_t::video_seq_header()));
        v.extend(c.audio(0, &flv_t::audio_seq_header()));
        for i in 0..6u32 {
            v.extend(c.video(
                i * 33,
                &flv_t::video_frame(i == 0, 66, &vec![0x41; 300 + i as usize * 700]),
            ));
            v.extend(c.audio(i * 21, &flv_t::audio_frame(&[0x21; 100])));
        }
        v.extend(c.set_chunk_size(128));
        v.extend(c.video(200, &flv_t::video_frame(false, 0, &[0x41; 1000])));
        v.extend(c.user_control(6, 1));
        v.extend(c.command("FCUnpublish", 6.0, 0, vec![]));
        v.extend(c.command("deleteStream", 7.0, 0, vec![]));
        v
    }

    #[test]
    fn valid_publish_script_reaches_media_and_end_in_any_read_size() {
        let mut script = valid_script();
        for split in [0u8, 1, 7, 100, 255] {
            script[0] = split;
            let out = session_after_handshake(&script);
            assert_eq!(out.publish_requests, 1);
            // Metadata, 2 configs, 7 video, 6 audio, End.
            assert_eq!(out.media_events, 17, "split {split}");
            assert!(out.ended);
        }
    }

    #[test]
    fn random_bytes_after_handshake_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let len = rng.below(1024);
            let data = rng.bytes(len);
            session_after_handshake(&data);
        }
    }

    #[test]
    fn mutated_valid_publishes_never_panic() {
        let script = valid_script();
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut reached_media = 0;
        for _ in 0..3000 {
            let mut data = script.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(data.len());
                match rng.below(6) {
                    0 => data[at] ^= 1 << rng.below(8),
                    1 => data[at] = rng.next() as u8,
                    2 => {
                        let n = rng.below(64);
                        let junk = rng.bytes(n);
                        data.splice(at..at, junk);
                    }
                    3 => {
                        let end = (at + rng.below(256)).min(data.len());
                        data.drain(at..end);
                    }
                    4 => {
                        let end = (at + rng.below(512)).min(data.len());
                        let copy = data[at..end].to_vec();
                        let to = rng.below(data.len());
                        data.splice(to..to, copy);
                    }
                    _ => data.truncate(at.max(1)),
                }
                if data.is_empty() {
                    data.push(0);
                }
            }
            data[0] = rng.next() as u8;
            if session_after_handshake(&data).media_events > 0 {
                reached_media += 1;
            }
        }
        // The mutations must still get deep into the protocol to mean anything.
        assert!(
            reached_media > 300,
            "only {reached_media} inputs reached media"
        );
    }
}
