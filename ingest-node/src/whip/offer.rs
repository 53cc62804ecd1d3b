//! A first look at a WHIP offer, before anything else is spent on it: which media sections
//! the publisher will *send* and which codecs each one offers.
//!
//! str0m would negotiate whatever overlaps with its codec config and silently answer a
//! VP8-only video section with a rejected m-line; the publisher would then "succeed" and
//! send nothing we can use. Checking the offer text first lets the endpoint say *why* it
//! refuses (406 with the codecs it saw) before the authoriser starts a pipeline.
//!
//! This is deliberately a line scanner over `m=`/`a=rtpmap`/direction lines, not an SDP
//! parser: str0m parses the offer for real afterwards.

use std::fmt;

/// What one offer proposes to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OfferSummary {
    /// Codec names (as in `a=rtpmap`, e.g. `H264`, `VP8`) of each video section the
    /// publisher sends on, one entry per section.
    pub video: Vec<Vec<String>>,
    /// The same for audio sections (`opus`, `red`, `CN`, ...).
    pub audio: Vec<Vec<String>>,
}

/// Why an offer cannot be ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OfferProblem {
    /// No `m=` section we could receive media from.
    NoMedia,
    NoVideo,
    NoAudio,
    /// Video is offered, but never as H.264: the codecs seen, for the error message.
    NoH264(Vec<String>),
    /// Audio is offered, but never as Opus.
    NoOpus(Vec<String>),
}

impl fmt::Display for OfferProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfferProblem::NoMedia => write!(f, "the offer sends no media"),
            OfferProblem::NoVideo => {
                write!(f, "the offer sends no video track; H.264 video is required")
            }
            OfferProblem::NoAudio => {
                write!(f, "the offer sends no audio track; Opus audio is required")
            }
            OfferProblem::NoH264(seen) => write!(
                f,
                "video must be offered as H.264 (offered: {}); prefer H.264 with setCodecPreferences",
                list(seen)
            ),
            OfferProblem::NoOpus(seen) => {
                write!(f, "audio must be offered as Opus (offered: {})", list(seen))
            }
        }
    }
}

fn list(codecs: &[String]) -> String {
    if codecs.is_empty() {
        "none".to_owned()
    } else {
        codecs.join(", ")
    }
}

impl OfferSummary {
    /// Scans the offer. Sections the publisher does not send on (`recvonly`, `inactive`,
    /// port 0) and non-RTP sections (data channels) are left out.
    pub(crate) fn scan(sdp: &str) -> OfferSummary {
        let mut summary = OfferSummary::default();
        let mut current: Option<Section> = None;
        for line in sdp.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(m) = line.strip_prefix("m=") {
                if let Some(done) = current.take() {
                    done.finish(&mut summary);
                }
                current = Section::start(m);
                continue;
            }
            let Some(section) = current.as_mut() else {
                continue;
            };
            match line {
                "a=recvonly" | "a=inactive" => section.sends = false,
                _ => {
                    if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
                        // `<pt> <encoding>/<clock>[/<channels>]`
                        if let Some(name) = rtpmap
                            .split_once(' ')
                            .and_then(|(_, enc)| enc.split('/').next())
                        {
                            let name = name.trim();
                            if !name.is_empty()
                                && !section.codecs.iter().any(|c| c.eq_ignore_ascii_case(name))
                            {
                                section.codecs.push(name.to_owned());
                            }
                        }
                    }
                }
            }
        }
        if let Some(done) = current.take() {
            done.finish(&mut summary);
        }
        summary
    }

    /// Accepts offers with at least one H.264 video section and one Opus audio section.
    pub(crate) fn check(&self) -> Result<(), OfferProblem> {
        if self.video.is_empty() && self.audio.is_empty() {
            return Err(OfferProblem::NoMedia);
        }
        if self.video.is_empty() {
            return Err(OfferProblem::NoVideo);
        }
        if self.audio.is_empty() {
            return Err(OfferProblem::NoAudio);
        }
        if !self
            .video
            .iter()
            .flatten()
            .any(|c| c.eq_ignore_ascii_case("H264"))
        {
            return Err(OfferProblem::NoH264(codec_names(&self.video)));
        }
        if !self
            .audio
            .iter()
            .flatten()
            .any(|c| c.eq_ignore_ascii_case("opus"))
        {
            return Err(OfferProblem::NoOpus(codec_names(&self.audio)));
        }
        Ok(())
    }
}

/// The media codecs of some sections, without the helpers (rtx, red, ulpfec, ...) that say
/// nothing about what can be decoded.
fn codec_names(sections: &[Vec<String>]) -> Vec<String> {
    const HELPERS: [&str; 6] = [
        "rtx",
        "red",
        "ulpfec",
        "flexfec-03",
        "CN",
        "telephone-event",
    ];
    let mut out: Vec<String> = Vec::new();
    for c in sections.iter().flatten() {
        if HELPERS.iter().any(|h| h.eq_ignore_ascii_case(c)) {
            continue;
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(c)) {
            out.push(c.clone());
        }
    }
    out
}

#[derive(Debug)]
struct Section {
    video: bool,
    sends: bool,
    codecs: Vec<String>,
}

impl Section {
    /// `m=<media> <port> <proto> <fmt> ...`; `None` for sections we never read media from.
    fn start(m: &str) -> Option<Section> {
        let mut parts = m.split_whitespace();
        let media = parts.next()?;
        let port = parts.next()?;
        let proto = parts.next()?;
        let video = match media {
            "video" => true,
            "audio" => false,
            _ => return None,
        };
        if !proto.contains("RTP") {
            return None;
        }
        // Port 0 means the section is rejected/disabled (RFC 3264 §5.1); bundled sections
        // keep a non-zero port (or use `a=bundle-only` with port 0, which Chrome does not).
        let port = port.split('/').next().unwrap_or(port);
        let sends = port != "0";
        Some(Section {
            video,
            sends,
            codecs: Vec::new(),
        })
    }

    fn finish(self, summary: &mut OfferSummary) {
        if !self.sends {
            return;
        }
        if self.video {
            summary.video.push(self.codecs);
        } else {
            summary.audio.push(self.codecs);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A trimmed Chromium offer (sendonly audio + video, H.264 after VP8).
    pub(crate) const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1111 cname:x\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 goog-remb\r\n\
a=rtcp-fb:102 transport-cc\r\n\
a=rtcp-fb:102 ccm fir\r\n\
a=rtcp-fb:102 nack\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=ssrc-group:FID 2222 3333\r\n\
a=ssrc:2222 cname:x\r\n\
a=ssrc:3333 cname:x\r\n";

    /// `CHROME_OFFER` with H.264 (and its RTX) taken out of the video section.
    pub(crate) fn vp8_only_offer() -> String {
        CHROME_OFFER
            .replace(" 96 97 102 103\r\n", " 96 97\r\n")
            .lines()
            .filter(|l| !l.contains(":102 ") && !l.contains(":103 ") && !l.contains("apt=102"))
            .map(|l| format!("{l}\r\n"))
            .collect()
    }

    #[test]
    fn chrome_offer_passes() {
        let s = OfferSummary::scan(CHROME_OFFER);
        assert_eq!(s.audio.len(), 1);
        assert_eq!(s.video.len(), 1);
        assert_eq!(s.video[0], ["VP8", "rtx", "H264"]);
        assert!(s.audio[0].contains(&"opus".to_owned()));
        assert_eq!(s.check(), Ok(()));
    }

    #[test]
    fn vp8_only_video_is_refused_with_the_codecs_seen() {
        let s = OfferSummary::scan(&vp8_only_offer());
        let err = s.check().unwrap_err();
        assert_eq!(err, OfferProblem::NoH264(vec!["VP8".to_owned()]));
        assert!(err.to_string().contains("H.264"), "{err}");
    }

    #[test]
    fn audio_without_opus_is_refused() {
        let sdp = CHROME_OFFER.replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 ISAC/16000");
        let err = OfferSummary::scan(&sdp).check().unwrap_err();
        match err {
            OfferProblem::NoOpus(seen) => {
                assert!(seen.contains(&"ISAC".to_owned()), "{seen:?}");
                assert!(
                    !seen.contains(&"red".to_owned()),
                    "helpers are not codecs: {seen:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sections_the_publisher_does_not_send_on_do_not_count() {
        let recvonly = CHROME_OFFER.replacen(
            "a=sendonly\r\na=rtcp-mux\r\na=rtcp-rsize",
            "a=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize",
            1,
        );
        assert_eq!(
            OfferSummary::scan(&recvonly).check(),
            Err(OfferProblem::NoVideo)
        );
        let no_audio = CHROME_OFFER.replace("m=audio 9 ", "m=audio 0 ");
        assert_eq!(
            OfferSummary::scan(&no_audio).check(),
            Err(OfferProblem::NoAudio)
        );
        let data_only =
            "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n";
        assert_eq!(
            OfferSummary::scan(data_only).check(),
            Err(OfferProblem::NoMedia)
        );
        assert_eq!(
            OfferSummary::scan("garbage").check(),
            Err(OfferProblem::NoMedia)
        );
    }
}
