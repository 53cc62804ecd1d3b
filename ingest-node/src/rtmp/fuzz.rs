//! The fuzz harnesses of the RTMP layer: arbitrary bytes fed to a [`Session`] after a valid
//! handshake ([`session_after_handshake`]), and straight into the AMF0 codec and the FLV
//! demuxer ([`flv_amf0`]).
//!
//! Shared by the AFL++ targets (`fuzz/fuzz_targets/rtmp_session.rs`,
//! `fuzz/fuzz_targets/flv_amf0.rs`; `scripts/fuzz.sh`) and by the unit tests below, which run
//! them over a few thousand pseudo-random and mutated inputs on stable Rust. For the session
//! the first input byte picks the read size so that chunk boundaries land everywhere;
//! publish requests are accepted or refused depending on the key, so both paths get
//! exercised.
//!
//! Besides "no panic", the session harness asserts the session's event invariants: nothing
//! after End, End at most once. The FLV/AMF0 harness asserts what those modules promise:
//! AMF0 re-encodes to bytes that decode to the same encoding (`decode(encode(v)) == v`);
//! every video config the demuxer emits is a valid avcC with 4-byte NAL lengths, every
//! video frame is 4-byte length-prefixed NAL units that fit the frame, with the caller's
//! DTS; no frame leaves before its codec's sequence header; an audio config has a sample
//! rate and at least one channel; aggregate sub-messages cover the message exactly.

use bytes::Bytes;

use super::amf0;
use super::chunk::msg_type;
use super::flv::{self, FlvDemuxer};
use super::session::{Session, SessionConfig, SessionEvent};
use crate::bitstream::{aac, h264};
use crate::media::{MediaEvent, NalFraming};
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

/// AMF0 or FLV, picked by the first byte's low bit.
///
/// - AMF0 (even): the rest is a command body for [`amf0::decode_all`]; what decodes must
///   re-encode to bytes that decode again and re-encode identically (compared as bytes, so
///   NaN numbers count as equal).
/// - FLV (odd): the rest is a sequence of records `[kind][dts: u16 BE][len: u16 BE][body]`
///   (a short last body is taken as is); `kind % 3` picks video, audio or an aggregate
///   message, fed to one [`FlvDemuxer`] like a session does. Every event is checked.
pub fn flv_amf0(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    if first & 1 == 0 {
        amf0_round_trip(rest);
    } else {
        flv_records(rest);
    }
}

fn amf0_round_trip(body: &[u8]) {
    let Ok(values) = amf0::decode_all(body) else {
        return;
    };
    let encoded = amf0::encode_all(&values);
    let again = amf0::decode_all(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded AMF0 does not decode: {e}"));
    assert_eq!(again.len(), values.len(), "value count changed");
    assert_eq!(
        amf0::encode_all(&again),
        encoded,
        "AMF0 encoding is not stable"
    );
}

/// What the demuxer has been told so far, to check its outputs against.
#[derive(Default)]
struct FlvSeen {
    video_config: bool,
    audio_config: bool,
}

fn flv_records(mut rest: &[u8]) {
    let mut demuxer = FlvDemuxer::default();
    let mut seen = FlvSeen::default();
    while rest.len() >= 5 {
        let kind = rest[0] % 3;
        let dts = u32::from(u16::from_be_bytes([rest[1], rest[2]]));
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let end = (5 + len).min(rest.len());
        let body = Bytes::copy_from_slice(&rest[5..end]);
        rest = &rest[end..];
        match kind {
            0 => demux(&mut demuxer, &mut seen, msg_type::VIDEO, dts, &body),
            1 => demux(&mut demuxer, &mut seen, msg_type::AUDIO, dts, &body),
            _ => {
                let Ok(parts) = flv::split_aggregate(&body, dts) else {
                    continue;
                };
                let covered: usize = parts.iter().map(|p| p.payload.len() + 15).sum();
                assert_eq!(covered, body.len(), "aggregate parts do not cover it");
                for part in parts {
                    demux(
                        &mut demuxer,
                        &mut seen,
                        part.type_id,
                        part.timestamp,
                        &part.payload,
                    );
                }
            }
        }
    }
}

fn demux(demuxer: &mut FlvDemuxer, seen: &mut FlvSeen, type_id: u8, ts: u32, body: &Bytes) {
    let ts = i64::from(ts);
    let event = match type_id {
        msg_type::VIDEO => demuxer.video(ts, body),
        msg_type::AUDIO => demuxer.audio(ts, body),
        _ => return,
    };
    let Ok(Some(event)) = event else {
        return;
    };
    match event {
        MediaEvent::VideoConfig { avcc } => {
            let config = h264::AvcConfig::parse(&avcc)
                .unwrap_or_else(|e| panic!("emitted avcC does not parse: {e}"));
            assert_eq!(config.length_size, 4, "avcC not patched to 4-byte lengths");
            // What the transcoder and the packager do with a publisher's parameter sets.
            for sps in &config.sps {
                let _ = h264::Sps::parse(sps);
            }
            let _ = config.to_bytes();
            seen.video_config = true;
        }
        MediaEvent::Video {
            dts_ms,
            framing,
            data,
            ..
        } => {
            assert!(seen.video_config, "video frame before its sequence header");
            assert_eq!(dts_ms, ts, "DTS is not the message time");
            assert_eq!(framing, NalFraming::Avcc);
            let nals = h264::avcc_nals(&data, 4)
                .unwrap_or_else(|e| panic!("emitted frame has bad NAL lengths: {e}"));
            let total: usize = nals.iter().map(|n| n.len()).sum();
            assert!(total <= data.len());
        }
        MediaEvent::AudioConfig {
            config,
            sample_rate: _,
            channels,
            ..
        } => {
            assert!(
                aac::AudioFormat::parse(&config).is_ok(),
                "emitted ASC does not parse"
            );
            assert!(channels >= 1, "audio config without channels");
            seen.audio_config = true;
        }
        MediaEvent::Audio { pts_ms, .. } => {
            assert!(seen.audio_config, "audio frame before its sequence header");
            assert_eq!(pts_ms, ts, "PTS is not the message time");
        }
        other => panic!("FLV demuxer emitted {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::amf0::Amf0Value;
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

    /// FLV/AMF0 harness input: the records of a valid publish's media messages.
    fn flv_records_seed() -> Vec<u8> {
        let record = |kind: u8, dts: u16, body: &[u8]| {
            let mut r = vec![kind];
            r.extend(dts.to_be_bytes());
            r.extend(u16::try_from(body.len()).expect("small").to_be_bytes());
            r.extend(body);
            r
        };
        let mut v = vec![1u8];
        v.extend(record(0, 0, &flv_t::video_seq_header()));
        v.extend(record(1, 0, &flv_t::audio_seq_header()));
        v.extend(record(0, 33, &flv_t::video_frame(true, 66, &[0x65; 40])));
        v.extend(record(1, 21, &flv_t::audio_frame(&[0x21; 20])));
        // An aggregate: one FLV video tag and its back-pointer.
        let tag = flv_t::video_frame(false, 0, &[0x41; 16]);
        let mut agg = vec![9u8];
        agg.extend(&u32::try_from(tag.len()).expect("small").to_be_bytes()[1..]);
        agg.extend([0, 0, 66, 0, 0, 0, 0]);
        agg.extend(&tag[..]);
        agg.extend(u32::try_from(11 + tag.len()).expect("small").to_be_bytes());
        v.extend(record(2, 66, &agg));
        v
    }

    /// AMF0 harness input: a `connect` command body.
    fn amf0_seed() -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend(amf0::encode_all(&[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("tcUrl", Amf0Value::string("rtmp://localhost/live")),
                ("fpad", Amf0Value::Boolean(false)),
                (
                    "list",
                    Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Undefined]),
                ),
                (
                    "when",
                    Amf0Value::Date {
                        millis: 1.5e12,
                        tz: 0,
                    },
                ),
                (
                    "meta",
                    Amf0Value::EcmaArray(vec![("w".into(), Amf0Value::Number(640.0))]),
                ),
            ]),
        ]));
        v
    }

    /// Writes the seed corpora of `rtmp_session` and `flv_amf0` under `$RILL_FUZZ_SEEDS`
    /// (`fuzz/corpus`); does nothing without it. The seeds also run through the harnesses.
    #[test]
    fn seed_corpus() {
        let mut script = valid_script();
        script[0] = 0;
        // A short publish too: connect, publish, both configs, one frame each, read whole.
        let mut c = Client::new();
        let mut short = vec![255u8];
        short.extend(c.connect_and_publish("live", "good-key"));
        short.extend(c.video(0, &flv_t::video_seq_header()));
        short.extend(c.audio(0, &flv_t::audio_seq_header()));
        short.extend(c.video(0, &flv_t::video_frame(true, 0, &[0x65; 64])));
        short.extend(c.audio(0, &flv_t::audio_frame(&[0x21; 16])));
        short.extend(c.command("deleteStream", 7.0, 0, vec![]));
        let session = [("publish-split-0", script), ("publish-short", short)];
        for (_, data) in &session {
            assert!(session_after_handshake(data).ended);
        }
        let flv = [
            ("flv-records", flv_records_seed()),
            ("amf0-connect", amf0_seed()),
        ];
        for (_, data) in &flv {
            flv_amf0(data);
        }
        let Some(dir) = std::env::var_os("RILL_FUZZ_SEEDS") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        for (target, seeds) in [("rtmp_session", &session[..]), ("flv_amf0", &flv[..])] {
            std::fs::create_dir_all(dir.join(target)).expect("seed dir");
            for (name, data) in seeds {
                std::fs::write(dir.join(target).join(name), data).expect("seed");
            }
        }
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
