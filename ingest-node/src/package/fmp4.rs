//! Per-rendition fragmented-MP4 (CMAF-style) muxer: [`EncodedPacket`]s in, one init segment
//! and numbered media segments out, all in memory.
//!
//! FFmpeg's `mp4` muxer does the box writing (through ffmpeg-next's `StreamIo` into a shared
//! buffer) with `movflags=empty_moov+default_base_moof+frag_custom+skip_sidx+skip_trailer+
//! frag_discont`, `use_editlist=0`, `avoid_negative_ts=disabled` (why not `cmaf`: see
//! `MOVFLAGS`). We decide the cuts ourselves and ask the muxer to close a fragment exactly
//! there (`frag_custom`), then find the fragment in the output by parsing top-level box
//! headers ([`super::boxes`]) — a flush is not trusted to be a fragment boundary.
//! `frag_keyframe` cannot do this job: it fragments at *every* video keyframe (two
//! fragments per 2 s segment with 1 s GOPs, more with scene cuts) and never fragments an
//! audio-only track (measured: 6 s of AAC came out as one `moof`).
//!
//! Invariants:
//! - The init segment is the bytes before the first fragment (`ftyp` + `moov`); it is ready
//!   together with the first media segment.
//! - One media segment = exactly one `moof` + `mdat`. A fragment in the output that we did
//!   not ask for is a [`PackageError::Framing`] error, never silently merged or split.
//! - Cuts fall on the stream timeline's grid of `segment_ms`: a segment ends before the first
//!   packet at or after the next grid point — for video only a keyframe may start a segment
//!   (the transcoder forces one on every grid point, so all video renditions cut at the same
//!   pts); audio cuts at the first frame at or after the same grid point.
//! - Timestamps in the fMP4 (`tfdt`, sample times) are the stream timeline plus
//!   [`MEDIA_TIME_OFFSET_MS`] in every rendition, so players line audio up with video from
//!   the media times alone, and B-frame decode times or AAC priming (negative on the stream
//!   timeline) stay representable (`tfdt` is unsigned).
//! - A segment's `start_pts`/`duration` come from packet timestamps: duration is the next
//!   segment's start minus this one's (the last segment: its latest presentation end).
//!
//! Input timestamps are integer milliseconds ([`EncodedPacket`]). Video is converted to the
//! 90 kHz (or configured) timescale exactly. AAC frames last 1024 samples, which is not a
//! whole number of ms, so contiguous AAC frames are laid end to end in the sample-rate
//! timescale (a gap of more than half a frame re-anchors on the packet's own timestamp).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use ffmpeg_next::format::context::{Output, StreamIo};
use ffmpeg_next::{Dictionary, Rational, codec, format};

use super::boxes::{self, BoxHeader};
use super::{PackageError, TrackConfig, TrackKind};
use crate::media::EncodedPacket;

/// Added to every stream-timeline timestamp before muxing (see the module docs). The same
/// in every rendition, so relative timing across renditions is untouched.
pub const MEDIA_TIME_OFFSET_MS: i64 = 10_000;

/// Muxer flags, see the module docs. `frag_custom`: fragments only where we flush;
/// `skip_sidx`: HLS needs no segment index, and a `sidx` before the first `moof` would
/// otherwise end up in the init segment; `skip_trailer`: no `mfra` after the last fragment;
/// `frag_discont` + `use_editlist=0`: `tfdt` carries the packets' own decode times instead
/// of times rebased to the first packet.
///
/// Not `cmaf`: in FFmpeg 5.1 it implies `negative_cts_offsets`, and together with
/// `frag_discont` that makes the muxer take the edit-list branch (`tfdt` = first pts) while
/// writing no edit list, so every video frame is presented one decode delay late (67 ms
/// with x264's B-frames at 30 fps; measured with ffprobe). The fragments are the same
/// `moof`/`mdat` structure with positive composition offsets; only the `cmfc` brand is
/// missing from `ftyp`, which no HLS player checks.
const MOVFLAGS: &str =
    "empty_moov+default_base_moof+frag_custom+skip_sidx+skip_trailer+frag_discont";

/// Packager settings shared by all renditions of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackagerOptions {
    /// Target segment duration in ms (1000–2000 for live). The same for every rendition.
    pub segment_ms: u32,
    /// Sequence number of the first segment; after a reconnect, the previous packager's
    /// [`Packager::next_sequence`], so object names are never reused.
    pub first_sequence: u64,
}

impl Default for PackagerOptions {
    fn default() -> Self {
        Self {
            segment_ms: 2000,
            first_sequence: 0,
        }
    }
}

/// One finished media segment (`moof` + `mdat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub sequence: u64,
    /// Presentation time of the first sample on the stream timeline, in `timescale` ticks
    /// (without [`MEDIA_TIME_OFFSET_MS`]).
    pub start_pts: i64,
    /// Exact duration in `timescale` ticks.
    pub duration: i64,
    /// Ticks per second of `start_pts` and `duration` (the track's timescale).
    pub timescale: u32,
    /// Video: the first sample is a keyframe (always, since cuts happen only on keyframes);
    /// audio: always true.
    pub starts_with_keyframe: bool,
    /// The segment's bytes, ready to upload as `seg-{sequence:06}.m4s`.
    pub data: Bytes,
}

impl Segment {
    /// Byte size of the segment.
    pub fn byte_size(&self) -> usize {
        self.data.len()
    }

    /// Duration in seconds (for `#EXTINF`).
    pub fn duration_secs(&self) -> f64 {
        self.duration as f64 / f64::from(self.timescale)
    }

    /// Duration in whole milliseconds (rounded).
    pub fn duration_ms(&self) -> i64 {
        rescale(self.duration, i64::from(self.timescale), 1000)
    }

    /// Start on the stream timeline in milliseconds (rounded), to derive the segment's wall
    /// clock for `#EXT-X-PROGRAM-DATE-TIME`.
    pub fn start_ms(&self) -> i64 {
        rescale(self.start_pts, i64::from(self.timescale), 1000)
    }
}

/// A `Write` sink the muxer's `StreamIo` owns one handle of while we read from the other.
#[derive(Debug, Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The segment being filled.
#[derive(Debug, Clone, Copy)]
struct OpenSegment {
    sequence: u64,
    start_pts: i64,
    /// Latest `pts + duration` seen, for the last segment's duration.
    end_pts: i64,
    keyframe: bool,
}

/// A segment whose cut has been made but whose bytes have not been found yet.
#[derive(Debug, Clone, Copy)]
struct ClosedSegment {
    sequence: u64,
    start_pts: i64,
    duration: i64,
    keyframe: bool,
}

/// fMP4 packager of one rendition (see the module docs).
pub struct Packager {
    kind: TrackKind,
    options: PackagerOptions,
    octx: Output,
    sink: SharedBuf,
    /// Ticks per second of the muxer's track (known after the header is written).
    timescale: i64,
    /// Fixed AAC frame length in ticks, when the codec has one.
    audio_frame_ticks: Option<i64>,
    /// Where the next contiguous audio frame starts, in ticks.
    audio_next_pts: Option<i64>,
    /// Muxer output not yet assigned to the init or a segment.
    pending: Vec<u8>,
    init: Option<Bytes>,
    open: Option<OpenSegment>,
    /// Boundary (stream ms) at or after which the next segment starts.
    next_boundary_ms: i64,
    closed: VecDeque<ClosedSegment>,
    next_sequence: u64,
    dropped_before_keyframe: u64,
    finished: bool,
}

impl std::fmt::Debug for Packager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packager")
            .field("kind", &self.kind)
            .field("options", &self.options)
            .field("timescale", &self.timescale)
            .field("next_sequence", &self.next_sequence)
            .field("init", &self.init.as_ref().map(Bytes::len))
            .field("pending", &self.pending.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Packager {
    /// Opens the muxer for one rendition and writes the header.
    pub fn new(config: &TrackConfig, options: PackagerOptions) -> Result<Self, PackageError> {
        if options.segment_ms == 0 {
            return Err(PackageError::Config("segment_ms must be positive".into()));
        }
        if config.extradata.is_empty() {
            return Err(PackageError::Config(
                "extradata (avcC / AudioSpecificConfig) is empty".into(),
            ));
        }
        let codec_id = config.codec_id()?;
        ffmpeg::init()?;

        let sink = SharedBuf::default();
        let io = StreamIo::from_write(sink.clone())?;
        let mut octx = format::output_to_stream(io, None, Some("mp4"))?;

        let mut params = codec::Parameters::new();
        set_codec_parameters(&mut params, config, codec_id)?;
        {
            let mut stream = octx.add_stream(None::<ffmpeg::Codec>)?;
            stream.set_parameters(params);
            let den = match config.kind {
                TrackKind::Video => config.time_base_den.max(1),
                TrackKind::Audio => config.sample_rate.max(1),
            };
            let den = i32::try_from(den)
                .map_err(|_| PackageError::Config(format!("time base 1/{den} out of range")))?;
            stream.set_time_base(Rational::new(1, den));
        }

        let mut opts = Dictionary::new();
        opts.set("movflags", MOVFLAGS);
        opts.set("use_editlist", "0");
        opts.set("avoid_negative_ts", "disabled");
        opts.set("flush_packets", "1");
        if config.kind == TrackKind::Video {
            opts.set(
                "video_track_timescale",
                &config.time_base_den.max(1).to_string(),
            );
        }
        let unused: Vec<String> = {
            let left = octx.write_header_with(opts)?;
            left.iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        if !unused.is_empty() {
            // An option the muxer did not take would silently change the output format.
            return Err(PackageError::Config(format!(
                "muxer ignored options {unused:?}"
            )));
        }

        // The muxer picks the track timescale (audio: the sample rate) and sets it as the
        // stream's time base while writing the header.
        let tb = octx
            .stream(0)
            .ok_or_else(|| PackageError::Config("muxer lost its stream".into()))?
            .time_base();
        if tb.numerator() != 1 || tb.denominator() <= 0 {
            return Err(PackageError::Config(format!(
                "unexpected muxer time base {tb}"
            )));
        }
        let timescale = i64::from(tb.denominator());
        let audio_frame_ticks = (config.kind == TrackKind::Audio
            && config.codec_string == "mp4a.40.2"
            && i64::from(config.sample_rate) == timescale)
            .then_some(1024);

        let mut packager = Self {
            kind: config.kind,
            options,
            octx,
            sink,
            timescale,
            audio_frame_ticks,
            audio_next_pts: None,
            pending: Vec::new(),
            init: None,
            open: None,
            next_boundary_ms: 0,
            closed: VecDeque::new(),
            next_sequence: options.first_sequence,
            dropped_before_keyframe: 0,
            finished: false,
        };
        packager.collect()?;
        Ok(packager)
    }

    /// The init segment (`ftyp` + `moov`), available from the first media segment on.
    pub fn init_segment(&self) -> Option<&Bytes> {
        self.init.as_ref()
    }

    /// Ticks per second of [`Segment::start_pts`] and [`Segment::duration`].
    pub fn timescale(&self) -> u32 {
        u32::try_from(self.timescale).unwrap_or(u32::MAX)
    }

    /// The sequence number the next segment will get (give it to the packager that takes
    /// over after a reconnect).
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Video packets dropped because no keyframe had arrived yet to start a segment with.
    pub fn dropped_before_keyframe(&self) -> u64 {
        self.dropped_before_keyframe
    }

    /// Muxes one packet (decode order). Returns the segments whose bytes became complete:
    /// a packet at or after a cut point closes the previous segment, so normally zero or one
    /// (more only if the muxer's output of an earlier cut arrived late).
    pub fn push(&mut self, packet: &EncodedPacket) -> Result<Vec<Segment>, PackageError> {
        if self.finished {
            return Err(PackageError::Config("packet pushed after finish".into()));
        }
        let (pts, dts, duration, keyframe) = self.ticks_of(packet);

        match self.open {
            None if self.kind == TrackKind::Video && !keyframe => {
                // A decoder cannot start on this packet, so no segment may either.
                self.dropped_before_keyframe += 1;
                return Ok(Vec::new());
            }
            None => self.open_segment(pts, packet.pts_ms, keyframe),
            Some(open) => {
                let cut_allowed = self.kind == TrackKind::Audio || keyframe;
                if cut_allowed && packet.pts_ms >= self.next_boundary_ms {
                    self.close_segment(open, pts - open.start_pts)?;
                    self.open_segment(pts, packet.pts_ms, keyframe);
                }
            }
        }
        if let Some(open) = self.open.as_mut() {
            open.end_pts = open.end_pts.max(pts + duration);
        }

        self.write_packet(packet, pts, dts, duration, keyframe)?;
        self.collect()
    }

    /// Closes the last segment and the muxer. Returns the segments still outstanding (the
    /// last one, if it has samples). Calling it again returns nothing.
    pub fn finish(&mut self) -> Result<Vec<Segment>, PackageError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        if let Some(open) = self.open.take() {
            self.close_segment(open, open.end_pts - open.start_pts)?;
        }
        self.octx.write_trailer()?;
        let segments = self.collect()?;
        if let Some(missing) = self.closed.front() {
            return Err(PackageError::Framing(format!(
                "segment {} never appeared in the muxer output",
                missing.sequence
            )));
        }
        Ok(segments)
    }

    /// Converts a packet's ms timestamps into muxer ticks (stream timeline, no offset).
    fn ticks_of(&mut self, packet: &EncodedPacket) -> (i64, i64, i64, bool) {
        let ts = self.timescale;
        let pts = rescale(packet.pts_ms, 1000, ts);
        let duration = rescale(packet.duration_ms.max(0), 1000, ts);
        match self.kind {
            TrackKind::Video => (
                pts,
                rescale(packet.dts_ms, 1000, ts),
                duration,
                packet.keyframe,
            ),
            TrackKind::Audio => {
                let duration = self.audio_frame_ticks.unwrap_or(duration);
                let pts = match self.audio_next_pts {
                    // Within half a frame of where the previous frame ended: the ms
                    // rounding, not a gap. Keep the samples contiguous.
                    Some(next) if (pts - next).abs() * 2 <= duration.max(1) => next,
                    _ => pts,
                };
                self.audio_next_pts = Some(pts + duration);
                // Every audio frame is a sync sample.
                (pts, pts, duration, true)
            }
        }
    }

    fn open_segment(&mut self, start_pts: i64, start_ms: i64, keyframe: bool) {
        let seg = i64::from(self.options.segment_ms);
        let mut boundary = (start_ms.div_euclid(seg) + 1) * seg;
        if self.next_sequence == self.options.first_sequence && boundary - start_ms < seg / 2 {
            // The very first segment starts just before a grid point (AAC priming frames,
            // B-frame reordering): a sliver of a segment helps no one, so it runs to the
            // following grid point. Every rendition starts within a few frames of the
            // others, so they all skip the same grid point.
            boundary += seg;
        }
        self.next_boundary_ms = boundary;
        self.open = Some(OpenSegment {
            sequence: self.next_sequence,
            start_pts,
            end_pts: start_pts,
            keyframe,
        });
        self.next_sequence += 1;
    }

    /// Records the cut and makes the muxer write the fragment of `open`.
    fn close_segment(&mut self, open: OpenSegment, duration: i64) -> Result<(), PackageError> {
        self.open = None;
        self.closed.push_back(ClosedSegment {
            sequence: open.sequence,
            start_pts: open.start_pts,
            duration,
            keyframe: open.keyframe,
        });
        flush_fragment(&mut self.octx)
    }

    fn write_packet(
        &mut self,
        packet: &EncodedPacket,
        pts: i64,
        dts: i64,
        duration: i64,
        keyframe: bool,
    ) -> Result<(), PackageError> {
        let offset = rescale(MEDIA_TIME_OFFSET_MS, 1000, self.timescale);
        if dts + offset < 0 {
            return Err(PackageError::Config(format!(
                "decode time {} ms lies before the media time origin",
                packet.dts_ms
            )));
        }
        let mut out = ffmpeg::Packet::copy(&packet.data);
        out.set_stream(0);
        out.set_pts(Some(pts + offset));
        out.set_dts(Some(dts + offset));
        out.set_duration(duration);
        if keyframe {
            out.set_flags(codec::packet::Flags::KEY);
        }
        out.write(&mut self.octx)?;
        Ok(())
    }

    /// Moves the muxer's output into `pending` and carves the init and finished fragments
    /// out of it.
    fn collect(&mut self) -> Result<Vec<Segment>, PackageError> {
        self.pending.extend_from_slice(&self.sink.take());
        let split = split_output(&self.pending, self.init.is_some())?;
        if let Some(init) = split.init {
            self.init = Some(Bytes::copy_from_slice(&self.pending[init]));
        }
        let mut done = Vec::with_capacity(split.fragments.len());
        for fragment in split.fragments {
            let closed = self.closed.pop_front().ok_or_else(|| {
                PackageError::Framing("the muxer wrote a fragment nobody asked for".into())
            })?;
            done.push(Segment {
                sequence: closed.sequence,
                start_pts: closed.start_pts,
                duration: closed.duration,
                timescale: self.timescale(),
                starts_with_keyframe: closed.keyframe,
                data: Bytes::copy_from_slice(&self.pending[fragment]),
            });
        }
        self.pending.drain(..split.consumed);
        Ok(done)
    }
}

/// What the start of the muxer's pending output holds.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    /// The init segment, found once the first fragment-only box shows up behind it.
    init: Option<Range<usize>>,
    /// Complete fragments: leading boxes (`styp`, `prft`, ...), `moof`, then `mdat`.
    fragments: Vec<Range<usize>>,
    /// Bytes accounted for; the rest waits for more output.
    consumed: usize,
}

/// Splits muxer output into the init (when `have_init` is false) and complete fragments,
/// from box headers alone. Bytes of an unfinished box or fragment are left unconsumed.
fn split_output(buf: &[u8], have_init: bool) -> Result<Split, boxes::BoxError> {
    let (found, _) = boxes::complete_boxes(buf)?;
    let mut split = Split {
        init: None,
        fragments: Vec::new(),
        consumed: 0,
    };
    let mut have_init = have_init;
    let mut fragment_start = None::<usize>;
    let mut seen_moof = false;
    for BoxHeader { kind, range } in found {
        if !have_init {
            if !starts_fragment(&kind) {
                continue;
            }
            split.init = Some(0..range.start);
            split.consumed = range.start;
            have_init = true;
        }
        let start = *fragment_start.get_or_insert(range.start);
        match &kind {
            b"moof" => seen_moof = true,
            b"mdat" if seen_moof => {
                split.fragments.push(start..range.end);
                split.consumed = range.end;
                fragment_start = None;
                seen_moof = false;
            }
            // Boxes that lead a fragment (styp, prft, emsg, ...) belong to it.
            _ => {}
        }
    }
    Ok(split)
}

/// Boxes that can only appear from the first fragment on; the init ends before the first.
fn starts_fragment(kind: &boxes::FourCc) -> bool {
    matches!(
        kind,
        b"moof" | b"styp" | b"sidx" | b"ssix" | b"prft" | b"emsg" | b"mdat"
    )
}

/// `value * to / from`, rounded to nearest (ties away from zero).
fn rescale(value: i64, from: i64, to: i64) -> i64 {
    let num = i128::from(value) * i128::from(to);
    let den = i128::from(from);
    let half = den / 2;
    let q = if num >= 0 {
        (num + half) / den
    } else {
        (num - half) / den
    };
    i64::try_from(q).unwrap_or(if q > 0 { i64::MAX } else { i64::MIN })
}

/// Fills codec parameters the MP4 muxer needs from a [`TrackConfig`].
///
/// Unsafe because ffmpeg-next 9's `codec::Parameters` has setters only for the media type,
/// codec id and bit rate: nothing for width/height, sample rate, channel layout or
/// extradata, and the avcC/AudioSpecificConfig extradata is what the muxer copies into
/// `avcC`/`esds`. (Going through an encoder `codec::Context` would give width/height/rate
/// setters but still no extradata setter.)
#[allow(unsafe_code)]
fn set_codec_parameters(
    params: &mut codec::Parameters,
    config: &TrackConfig,
    codec_id: codec::Id,
) -> Result<(), PackageError> {
    use ffmpeg::ffi;

    params.set_id(codec_id);
    let medium = match config.kind {
        TrackKind::Video => ffmpeg::media::Type::Video,
        TrackKind::Audio => ffmpeg::media::Type::Audio,
    };
    params.set_medium(medium);
    let int = |v: u32, what: &str| {
        i32::try_from(v).map_err(|_| PackageError::Config(format!("{what} {v} out of range")))
    };
    let (width, height) = (int(config.width, "width")?, int(config.height, "height")?);
    let (rate, channels) = (
        int(config.sample_rate, "sample rate")?,
        int(config.channels, "channels")?,
    );
    let extradata_len = i32::try_from(config.extradata.len())
        .map_err(|_| PackageError::Config("extradata too large".into()))?;
    let padded = config.extradata.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;

    // SAFETY: `params.as_mut_ptr()` points to the AVCodecParameters that `params` owns
    // (allocated by `Parameters::new`; NULL only if that allocation failed, checked first),
    // and we hold `&mut params`, so nothing else touches it. `extradata` is allocated with
    // `av_mallocz` (zeroed, so the required padding is zero) with room for the data plus
    // AV_INPUT_BUFFER_PADDING_SIZE, as the field's contract demands; the copy stays inside
    // that allocation. Any previous extradata is
    // freed with `av_freep` first (a new Parameters has none). Ownership passes to the
    // AVCodecParameters, which frees it with `avcodec_parameters_free`.
    // `av_channel_layout_default` writes a native-order layout into the embedded struct
    // (no allocation for native layouts).
    unsafe {
        let par = params.as_mut_ptr();
        if par.is_null() {
            // `avcodec_parameters_alloc` failed inside `Parameters::new`.
            return Err(PackageError::Ffmpeg(ffmpeg::Error::Other {
                errno: ffmpeg::error::ENOMEM,
            }));
        }
        match config.kind {
            TrackKind::Video => {
                (*par).width = width;
                (*par).height = height;
            }
            TrackKind::Audio => {
                (*par).sample_rate = rate;
                ffi::av_channel_layout_default(&mut (*par).ch_layout, channels.max(1));
                if codec_id == codec::Id::AAC {
                    (*par).frame_size = 1024;
                }
            }
        }
        ffi::av_freep(std::ptr::addr_of_mut!((*par).extradata).cast());
        (*par).extradata_size = 0;
        let buf = ffi::av_mallocz(padded).cast::<u8>();
        if buf.is_null() {
            return Err(PackageError::Ffmpeg(ffmpeg::Error::Other {
                errno: ffmpeg::error::ENOMEM,
            }));
        }
        std::ptr::copy_nonoverlapping(config.extradata.as_ptr(), buf, config.extradata.len());
        (*par).extradata = buf;
        (*par).extradata_size = extradata_len;
    }
    Ok(())
}

/// Asks the muxer to write the fragment of everything written so far.
///
/// Unsafe because the only way to request a `frag_custom` fragment is
/// `av_write_frame(ctx, NULL)`, and ffmpeg-next 9 has no wrapper for a NULL packet:
/// `Packet::write` always passes a packet and refuses an empty one (`Error::InvalidData`).
#[allow(unsafe_code)]
fn flush_fragment(octx: &mut Output) -> Result<(), PackageError> {
    // SAFETY: `octx.as_mut_ptr()` is the live AVFormatContext owned by `octx`, whose header
    // has been written (the `Packager` writes it in `new`); we hold `&mut octx`, so no other
    // call uses the context concurrently. A NULL packet is the documented way to flush a
    // muxer with AVFMT_ALLOW_FLUSH (the mp4 muxer has it); FFmpeg reads nothing through the
    // NULL pointer.
    let ret = unsafe { ffmpeg::ffi::av_write_frame(octx.as_mut_ptr(), std::ptr::null_mut()) };
    if ret < 0 {
        Err(PackageError::Ffmpeg(ffmpeg::Error::from(ret)))
    } else {
        Ok(())
    }
}

/// Copies the extradata (avcC, AudioSpecificConfig) out of codec parameters — e.g. those
/// of an opened encoder (`codec::Parameters::from(&encoder)`) or a demuxed stream — to fill
/// [`TrackConfig::extradata`].
///
/// Unsafe inside for the same reason as `set_codec_parameters`: ffmpeg-next 9 has no
/// extradata accessor.
#[allow(unsafe_code)]
pub fn extradata_of(params: &codec::Parameters) -> Bytes {
    // SAFETY: `params.as_ptr()` points to live AVCodecParameters (or is NULL, checked) for
    // as long as `params` is borrowed; `extradata` is either NULL or an allocation of at
    // least `extradata_size` bytes (the field's contract), and we copy it out before the
    // borrow ends.
    unsafe {
        let par = params.as_ptr();
        if par.is_null() {
            return Bytes::new();
        }
        let (ptr, len) = ((*par).extradata, (*par).extradata_size);
        match usize::try_from(len) {
            Ok(len) if !ptr.is_null() && len > 0 => {
                Bytes::copy_from_slice(std::slice::from_raw_parts(ptr, len))
            }
            _ => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds_to_nearest() {
        assert_eq!(rescale(33, 1000, 90_000), 2970);
        assert_eq!(rescale(21, 1000, 48_000), 1008);
        assert_eq!(rescale(1024, 48_000, 1000), 21);
        assert_eq!(rescale(-1024, 48_000, 1000), -21);
        assert_eq!(rescale(-66, 1000, 90_000), -5940);
        assert_eq!(rescale(1, 3, 1), 0);
        assert_eq!(rescale(2, 3, 1), 1);
    }

    fn mk(kind: &[u8; 4], len: usize) -> Vec<u8> {
        let mut v = u32::try_from(len + 8).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.resize(len + 8, 0);
        v
    }

    #[test]
    fn split_waits_for_whole_fragments_and_cuts_init_before_the_first() {
        let head = [mk(b"ftyp", 16), mk(b"moov", 100)].concat();
        let frag1 = [mk(b"moof", 40), mk(b"mdat", 500)].concat();
        let frag2 = [mk(b"styp", 8), mk(b"moof", 40), mk(b"mdat", 300)].concat();

        // Header only: nothing is known yet (the init ends where the first fragment starts).
        let split = split_output(&head, false).unwrap();
        assert_eq!(
            split,
            Split {
                init: None,
                fragments: vec![],
                consumed: 0
            }
        );

        // Header + a fragment whose mdat is cut short: init known, fragment pending.
        let mut buf = [head.clone(), frag1.clone()].concat();
        buf.truncate(buf.len() - 10);
        let split = split_output(&buf, false).unwrap();
        assert_eq!(split.init, Some(0..head.len()));
        assert!(split.fragments.is_empty());
        assert_eq!(split.consumed, head.len());

        // Two whole fragments arriving at once, the second led by a styp that belongs to
        // it; a third fragment's moof without its mdat stays pending.
        let buf = [frag1.clone(), frag2.clone(), mk(b"moof", 40)].concat();
        let split = split_output(&buf, true).unwrap();
        assert_eq!(split.init, None);
        assert_eq!(
            split.fragments,
            [0..frag1.len(), frag1.len()..frag1.len() + frag2.len()]
        );
        assert_eq!(split.consumed, frag1.len() + frag2.len());
    }

    #[test]
    fn packager_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Packager>();
    }

    #[test]
    fn finish_without_packets_yields_nothing_and_later_pushes_fail() {
        let avcc = [
            1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1f, 0x01, 0x00, 0x02,
            0x68, 0xeb,
        ];
        let cfg = TrackConfig {
            kind: TrackKind::Video,
            codec_string: "avc1.64001f".into(),
            extradata: Bytes::copy_from_slice(&avcc),
            width: 1280,
            height: 720,
            sample_rate: 0,
            channels: 0,
            time_base_den: 90_000,
        };
        let mut packager = Packager::new(&cfg, PackagerOptions::default()).unwrap();
        assert_eq!(packager.timescale(), 90_000);
        // A publisher that left before its first keyframe: nothing to upload, not even an
        // init (it would describe a track without media).
        let delta = EncodedPacket {
            rendition: 0,
            pts_ms: 0,
            dts_ms: 0,
            duration_ms: 33,
            keyframe: false,
            data: Bytes::from_static(&[0, 0, 0, 2, 0x41, 0x9a]),
        };
        assert!(packager.push(&delta).unwrap().is_empty());
        assert_eq!(packager.dropped_before_keyframe(), 1);
        assert!(packager.finish().unwrap().is_empty());
        assert!(packager.init_segment().is_none());
        assert!(matches!(
            packager.push(&delta),
            Err(PackageError::Config(_))
        ));
    }

    #[test]
    fn rejects_bad_config() {
        let mut cfg = TrackConfig {
            kind: TrackKind::Video,
            codec_string: "hvc1.1.6.L93.B0".into(),
            extradata: Bytes::from_static(&[1, 0x64, 0, 0x1f]),
            width: 1280,
            height: 720,
            sample_rate: 0,
            channels: 0,
            time_base_den: 90_000,
        };
        assert!(matches!(
            Packager::new(&cfg, PackagerOptions::default()),
            Err(PackageError::Config(_))
        ));
        cfg.codec_string = "avc1.64001f".into();
        cfg.extradata = Bytes::new();
        assert!(matches!(
            Packager::new(&cfg, PackagerOptions::default()),
            Err(PackageError::Config(_))
        ));
    }
}
