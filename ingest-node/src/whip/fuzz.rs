//! The fuzz harness of WHIP offer handling: arbitrary bytes as the body of
//! `POST /whip/{streamId}`, through the same steps the handler takes before the authoriser
//! (`http.rs`): UTF-8, str0m's SDP parser, our first look at the offer ([`OfferSummary`]),
//! then negotiation on a receive-only `Rtc` built like every publisher's, and the check that
//! the answer kept H.264 and Opus.
//!
//! Run by the AFL++ target `whip_offer` (`fuzz/fuzz_targets/whip_offer.rs`,
//! `scripts/fuzz.sh`) and by the unit tests below. Checked besides "no panic":
//! - the summary's verdict agrees with what it saw: accepted means at least one video
//!   section offering H.264 and one audio section offering Opus; a refusal names what is
//!   missing, and its message is non-empty;
//! - an offer the summary accepts and str0m parses either negotiates or is refused with an
//!   error, and an answer is SDP that str0m parses back as an answer.
//!
//! The DTLS certificate is made once per process (the handler makes one per `Rtc`; that
//! costs a key generation per execution and tests nothing of ours).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use str0m::Candidate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;

use super::http::{answer_receives_both, rtc_config};
use super::offer::{OfferProblem, OfferSummary};

fn cert() -> Option<DtlsCert> {
    static CERT: OnceLock<Option<DtlsCert>> = OnceLock::new();
    CERT.get_or_init(|| {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
    })
    .clone()
}

/// One offer body. Panics only on a bug.
pub fn offer(data: &[u8]) {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    // Runs on every text: the scanner must not depend on str0m having accepted it.
    let summary = OfferSummary::scan(sdp);
    let verdict = summary.check();
    check_verdict(&summary, &verdict);
    let Ok(offer) = SdpOffer::from_sdp_string(sdp) else {
        return;
    };
    if verdict.is_err() {
        return;
    }
    let Some(cert) = cert() else {
        return;
    };
    let mut rtc = rtc_config(Duration::from_secs(5))
        .set_dtls_cert(cert)
        .build(Instant::now());
    let addr = std::net::SocketAddr::from(([192, 0, 2, 1], 8189));
    let Ok(candidate) = Candidate::host(addr, "udp") else {
        return;
    };
    if rtc.add_local_candidate(candidate).is_none() {
        return;
    }
    let Ok(answer) = rtc.sdp_api().accept_offer(offer) else {
        return;
    };
    let text = answer.to_sdp_string();
    if let Err(e) = SdpAnswer::from_sdp_string(&text) {
        panic!("our answer is not SDP str0m reads back: {e}\n{text}");
    }
    let _ = answer_receives_both(&text);
}

fn check_verdict(summary: &OfferSummary, verdict: &Result<(), OfferProblem>) {
    let offers = |sections: &[Vec<String>], codec: &str| {
        sections
            .iter()
            .flatten()
            .any(|c| c.eq_ignore_ascii_case(codec))
    };
    match verdict {
        Ok(()) => {
            assert!(offers(&summary.video, "H264"), "accepted without H.264");
            assert!(offers(&summary.audio, "opus"), "accepted without Opus");
        }
        Err(problem) => {
            assert!(!problem.to_string().is_empty());
            match problem {
                OfferProblem::NoMedia => {
                    assert!(summary.video.is_empty() && summary.audio.is_empty());
                }
                OfferProblem::NoVideo => assert!(summary.video.is_empty()),
                OfferProblem::NoAudio => assert!(summary.audio.is_empty()),
                OfferProblem::NoH264(_) => assert!(!offers(&summary.video, "H264")),
                OfferProblem::NoOpus(_) => assert!(!offers(&summary.audio, "opus")),
            }
        }
    }
    for codec in summary.video.iter().chain(&summary.audio).flatten() {
        assert!(
            !codec.is_empty() && codec.trim() == codec,
            "codec name {codec:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::offer::tests::{CHROME_OFFER, vp8_only_offer};
    use super::*;

    #[test]
    fn a_browser_offer_negotiates_in_the_harness() {
        let summary = OfferSummary::scan(CHROME_OFFER);
        assert_eq!(summary.check(), Ok(()));
        offer(CHROME_OFFER.as_bytes());
        offer(vp8_only_offer().as_bytes());
    }

    #[test]
    fn mangled_offers_never_panic() {
        let base = CHROME_OFFER.as_bytes();
        for cut in (0..base.len()).step_by(37) {
            offer(&base[..cut]);
            let mut flipped = base.to_vec();
            flipped[cut] ^= 0x20;
            offer(&flipped);
        }
        offer(b"\xff\xfe");
        offer(b"m=video 9 RTP 96\r\na=rtpmap:96 \r\nm=audio\r\n");
    }
}
