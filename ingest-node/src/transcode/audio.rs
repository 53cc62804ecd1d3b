//! The audio rendition: AAC or Opus in, AAC-LC 48 kHz stereo out, on the transcoder's
//! thread (cheap next to video).
//!
//! Invariants: the output timeline is continuous (gaps longer than [`AUDIO_GAP_MS`] are
//! filled with silence, at most [`AUDIO_MAX_FILL_MS`] at once; a longer gap moves the audio
//! clock), and packets are raw AAC frames (no ADTS) described by the AudioSpecificConfig.

use bytes::Bytes;
use ffmpeg_next::{
    ChannelLayout, Dictionary, Packet, Rational, codec, decoder, encoder, format, frame,
    software::resampling,
};

use super::TranscodeError;
use super::aac::AudioSpecificConfig;
use crate::media::{AudioCodec, EncodedPacket};

pub(super) const AUDIO_RATE: u32 = 48_000;
pub(super) const AAC_FRAME: usize = 1024;
/// Audio gaps longer than this are filled with silence (publishers drop audio on stalls; the
/// AAC timeline must stay continuous for HLS players). Shorter ones are clock jitter.
const AUDIO_GAP_MS: i64 = 100;
/// At most this much silence is inserted at once; a longer gap moves the audio clock.
const AUDIO_MAX_FILL_MS: i64 = 5_000;

pub(super) struct AudioPath {
    pub(super) index: usize,
    input: Option<AudioInput>,
    resampler: Option<((format::Sample, u64, u32), resampling::Context)>,
    fifo: [Vec<f32>; 2],
    encoder: encoder::Audio,
    /// Timeline ms of output sample 0.
    start_ms: Option<i64>,
    /// Output samples handed to the encoder so far.
    queued: i64,
    warned: bool,
}

struct AudioInput {
    codec: AudioCodec,
    asc: Option<AudioSpecificConfig>,
    decoder: decoder::Audio,
}

impl AudioPath {
    pub(super) fn new(index: usize) -> Result<Self, TranscodeError> {
        let codec = encoder::find(codec::Id::AAC).ok_or(TranscodeError::Missing("AAC encoder"))?;
        let mut ctx = codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(TranscodeError::ffmpeg("AAC encoder context"))?;
        ctx.set_rate(AUDIO_RATE as i32);
        ctx.set_channel_layout(ChannelLayout::STEREO);
        ctx.set_channels(2);
        ctx.set_format(format::Sample::F32(format::sample::Type::Planar));
        ctx.set_bit_rate(super::ladder::AUDIO_KBPS as usize * 1000);
        ctx.set_time_base(Rational::new(1, AUDIO_RATE as i32));
        let encoder = ctx
            .open_as(codec)
            .map_err(TranscodeError::ffmpeg("opening the AAC encoder"))?;
        Ok(Self {
            index,
            input: None,
            resampler: None,
            fifo: [Vec::new(), Vec::new()],
            encoder,
            start_ms: None,
            queued: 0,
            warned: false,
        })
    }

    pub(super) fn configure(
        &mut self,
        codec: AudioCodec,
        config: &[u8],
    ) -> Result<(), TranscodeError> {
        let asc = match codec {
            AudioCodec::Aac => Some(
                AudioSpecificConfig::parse(config)
                    .map_err(|e| TranscodeError::Input(e.to_string()))?,
            ),
            AudioCodec::Opus => None,
        };
        if self
            .input
            .as_ref()
            .is_some_and(|i| i.codec == codec && i.asc == asc)
        {
            return Ok(());
        }
        self.input = Some(AudioInput::open(codec, asc)?);
        Ok(())
    }

    pub(super) fn on_packet(
        &mut self,
        codec: AudioCodec,
        pts: i64,
        data: &[u8],
        out: &mut Vec<EncodedPacket>,
    ) -> Result<(), TranscodeError> {
        if self.input.as_ref().is_none_or(|i| i.codec != codec) {
            if codec == AudioCodec::Opus {
                // Opus needs no configuration record (RFC 7587: always 48 kHz, stereo max).
                self.input = Some(AudioInput::open(codec, None)?);
            } else {
                if !self.warned {
                    tracing::warn!("AAC audio before its AudioSpecificConfig: dropped");
                    self.warned = true;
                }
                return Ok(());
            }
        }
        let start = *self.start_ms.get_or_insert(pts);
        // Where this packet belongs on the output clock, versus where the output is.
        let expected = (pts - start) * i64::from(AUDIO_RATE) / 1000;
        let position = self.queued + self.fifo[0].len() as i64;
        let gap = expected - position;
        if gap > AUDIO_GAP_MS * i64::from(AUDIO_RATE) / 1000 {
            let max_fill = AUDIO_MAX_FILL_MS * i64::from(AUDIO_RATE) / 1000;
            let fill = gap.min(max_fill);
            for ch in &mut self.fifo {
                ch.resize(ch.len() + fill as usize, 0.0);
            }
            if gap > fill {
                // A long outage: move the clock instead of sending minutes of silence.
                self.start_ms = Some(start + (gap - fill) * 1000 / i64::from(AUDIO_RATE));
            }
        }
        let Some(input) = self.input.as_mut() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(data.len() + 7);
        if let Some(asc) = &input.asc {
            match asc.adts_header(data.len()) {
                Ok(h) => bytes.extend_from_slice(&h),
                Err(e) => {
                    tracing::warn!("dropping an AAC frame: {e}");
                    return Ok(());
                }
            }
        }
        bytes.extend_from_slice(data);
        let packet = Packet::copy(&bytes);
        if let Err(e) = input.decoder.send_packet(&packet) {
            tracing::warn!("audio decoder refused a packet: {e}");
        }
        self.drain_decoder(out)
    }

    fn drain_decoder(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), TranscodeError> {
        loop {
            let mut decoded = frame::Audio::empty();
            let got = self
                .input
                .as_mut()
                .is_some_and(|i| i.decoder.receive_frame(&mut decoded).is_ok());
            if !got {
                return self.encode_ready(out, false);
            }
            self.resample(&decoded)?;
        }
    }

    fn resample(&mut self, decoded: &frame::Audio) -> Result<(), TranscodeError> {
        let layout = if decoded.channel_layout().is_empty() {
            ChannelLayout::default(i32::from(decoded.channels().max(1)))
        } else {
            decoded.channel_layout()
        };
        let key = (decoded.format(), layout.bits(), decoded.rate());
        if self.resampler.as_ref().is_none_or(|(k, _)| *k != key) {
            let ctx = resampling::Context::get(
                key.0,
                layout,
                key.2,
                format::Sample::F32(format::sample::Type::Planar),
                ChannelLayout::STEREO,
                AUDIO_RATE,
            )
            .map_err(TranscodeError::ffmpeg("audio resampler"))?;
            self.resampler = Some((key, ctx));
        }
        let capacity =
            decoded.samples() * AUDIO_RATE as usize / decoded.rate().max(1) as usize + 256;
        let mut converted = frame::Audio::new(
            format::Sample::F32(format::sample::Type::Planar),
            capacity,
            ChannelLayout::STEREO,
        );
        let mut input = decoded.clone();
        if input.channel_layout().is_empty() {
            input.set_channel_layout(layout);
        }
        if let Some((_, ctx)) = self.resampler.as_mut() {
            ctx.run(&input, &mut converted)
                .map_err(TranscodeError::ffmpeg("resampling audio"))?;
        }
        let n = converted.samples();
        for (ch, fifo) in self.fifo.iter_mut().enumerate() {
            fifo.extend_from_slice(&converted.plane::<f32>(ch)[..n]);
        }
        Ok(())
    }

    /// Encodes every complete 1024-sample frame (and, when `last`, the remainder).
    fn encode_ready(
        &mut self,
        out: &mut Vec<EncodedPacket>,
        last: bool,
    ) -> Result<(), TranscodeError> {
        while self.fifo[0].len() >= AAC_FRAME || (last && !self.fifo[0].is_empty()) {
            let n = self.fifo[0].len().min(AAC_FRAME);
            let mut f = frame::Audio::new(
                format::Sample::F32(format::sample::Type::Planar),
                n,
                ChannelLayout::STEREO,
            );
            f.set_rate(AUDIO_RATE);
            f.set_channels(2);
            f.set_pts(Some(self.queued));
            for (ch, fifo) in self.fifo.iter_mut().enumerate() {
                f.plane_mut::<f32>(ch)[..n].copy_from_slice(&fifo[..n]);
                fifo.drain(..n);
            }
            self.queued += n as i64;
            self.encoder
                .send_frame(&f)
                .map_err(TranscodeError::ffmpeg("AAC encoder"))?;
            self.drain_encoder(out);
        }
        Ok(())
    }

    fn drain_encoder(&mut self, out: &mut Vec<EncodedPacket>) {
        let mut packet = Packet::empty();
        let start = self.start_ms.unwrap_or(0);
        let rate = i64::from(AUDIO_RATE);
        let ms = |samples: i64| start + (samples * 1000).div_euclid(rate);
        while self.encoder.receive_packet(&mut packet).is_ok() {
            let pts = packet.pts().unwrap_or(0);
            let duration = if packet.duration() > 0 {
                packet.duration()
            } else {
                AAC_FRAME as i64
            };
            out.push(EncodedPacket {
                rendition: self.index,
                pts_ms: ms(pts),
                dts_ms: ms(packet.dts().unwrap_or(pts)),
                duration_ms: ms(pts + duration) - ms(pts),
                keyframe: true,
                data: Bytes::copy_from_slice(packet.data().unwrap_or(&[])),
            });
        }
    }

    pub(super) fn flush(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), TranscodeError> {
        if self.start_ms.is_none() {
            return Ok(()); // no audio ever arrived
        }
        if let Some(input) = self.input.as_mut() {
            let _ = input.decoder.send_eof();
        }
        self.drain_decoder(out)?;
        self.encode_ready(out, true)?;
        self.encoder
            .send_eof()
            .map_err(TranscodeError::ffmpeg("AAC encoder flush"))?;
        self.drain_encoder(out);
        Ok(())
    }
}

impl AudioInput {
    fn open(codec: AudioCodec, asc: Option<AudioSpecificConfig>) -> Result<Self, TranscodeError> {
        let (id, name) = match codec {
            AudioCodec::Aac => (codec::Id::AAC, "AAC decoder"),
            AudioCodec::Opus => (codec::Id::OPUS, "Opus decoder"),
        };
        let found = decoder::find(id).ok_or(TranscodeError::Missing(name))?;
        let mut opts = Dictionary::new();
        if codec == AudioCodec::Opus {
            // Without an OpusHead the decoder needs the channel count and rate from us.
            opts.set("ac", "2");
            opts.set("ar", "48000");
        }
        let decoder = codec::context::Context::new_with_codec(found)
            .decoder()
            .open_as_with(found, opts)
            .and_then(|o| o.audio())
            .map_err(TranscodeError::ffmpeg(format!("opening the {name}")))?;
        Ok(Self {
            codec,
            asc,
            decoder,
        })
    }
}
