//! JPEG thumbnails of the decoded source, on a media-time cadence.
//!
//! The first picture is taken a second in (a WebRTC source often opens on a black or
//! half-decoded frame), then one every `every_ms` of media time. Media time, not wall time,
//! so a stalled publisher produces no stale duplicates and a test at `-re` speed is
//! deterministic. Encoding a 640-wide JPEG costs a few milliseconds every ten seconds, so it
//! runs inline on the media thread.

use ffmpeg_next::{Rational, codec, encoder, format, frame, software::scaling};

/// Width of a thumbnail; the height follows the source's aspect ratio.
pub const THUMBNAIL_WIDTH: u32 = 640;

/// Decides when a thumbnail is due and encodes it.
pub struct Thumbnailer {
    every_ms: i64,
    next_ms: Option<i64>,
    scaler: Option<((format::Pixel, u32, u32), scaling::Context)>,
}

impl std::fmt::Debug for Thumbnailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnailer")
            .field("every_ms", &self.every_ms)
            .field("next_ms", &self.next_ms)
            .finish_non_exhaustive()
    }
}

/// Even dimensions no wider than [`THUMBNAIL_WIDTH`], keeping the source's aspect ratio.
pub fn thumbnail_size(width: u32, height: u32) -> (u32, u32) {
    let w = width.clamp(2, THUMBNAIL_WIDTH) & !1;
    let h = (u64::from(height) * u64::from(w) / u64::from(width.max(1))) as u32;
    (w, h.max(2) & !1)
}

impl Thumbnailer {
    pub fn new(every_ms: i64) -> Thumbnailer {
        Thumbnailer {
            every_ms: every_ms.max(1000),
            next_ms: None,
            scaler: None,
        }
    }

    /// Whether the frame at `pts_ms` should become a thumbnail. Advances the schedule when
    /// it says yes, so a failed encode is not retried on every following frame.
    pub fn due(&mut self, pts_ms: i64) -> bool {
        let next = *self.next_ms.get_or_insert(pts_ms + 1000);
        if pts_ms < next {
            return false;
        }
        self.next_ms = Some(pts_ms + self.every_ms);
        true
    }

    /// A JPEG of `picture`.
    pub fn encode(&mut self, picture: &frame::Video) -> Result<Vec<u8>, String> {
        let (w, h) = thumbnail_size(picture.width(), picture.height());
        let key = (picture.format(), picture.width(), picture.height());
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            let ctx = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                format::Pixel::YUVJ420P,
                w,
                h,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| format!("swscale for the thumbnail: {e}"))?;
            self.scaler = Some((key, ctx));
        }
        let mut scaled = frame::Video::new(format::Pixel::YUVJ420P, w, h);
        if let Some((_, ctx)) = self.scaler.as_mut() {
            ctx.run(picture, &mut scaled)
                .map_err(|e| format!("swscale: {e}"))?;
        }
        scaled.set_pts(Some(0));
        let codec = encoder::find(codec::Id::MJPEG).ok_or("FFmpeg has no MJPEG encoder")?;
        let mut ctx = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| e.to_string())?;
        ctx.set_width(w);
        ctx.set_height(h);
        ctx.set_format(format::Pixel::YUVJ420P);
        ctx.set_time_base(Rational::new(1, 25));
        // A fixed quantiser (JPEG quality ~85) instead of a bitrate: one picture has no rate.
        ctx.set_qmin(3);
        ctx.set_qmax(3);
        let mut enc = ctx
            .open_as(codec)
            .map_err(|e| format!("opening the MJPEG encoder: {e}"))?;
        enc.send_frame(&scaled).map_err(|e| format!("mjpeg: {e}"))?;
        enc.send_eof().map_err(|e| format!("mjpeg: {e}"))?;
        let mut packet = ffmpeg_next::Packet::empty();
        enc.receive_packet(&mut packet)
            .map_err(|e| format!("mjpeg: {e}"))?;
        packet
            .data()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "mjpeg produced an empty packet".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_thumbnail_is_a_second_in_then_one_per_period() {
        let mut t = Thumbnailer::new(10_000);
        let due: Vec<i64> = (0..700).map(|i| i * 33).filter(|&pts| t.due(pts)).collect();
        assert_eq!(due.len(), 3, "{due:?}");
        assert!((1000..1040).contains(&due[0]), "{due:?}");
        assert!(due[1] - due[0] >= 10_000 && due[1] - due[0] < 10_040);
    }

    #[test]
    fn thumbnails_keep_the_aspect_ratio_with_even_sizes() {
        assert_eq!(thumbnail_size(1920, 1080), (640, 360));
        assert_eq!(thumbnail_size(1080, 1920), (640, 1136));
        assert_eq!(thumbnail_size(320, 241), (320, 240));
        assert_eq!(thumbnail_size(641, 481), (640, 480));
    }

    #[test]
    fn a_decoded_picture_becomes_a_jpeg() {
        crate::transcode::init().expect("ffmpeg");
        let mut picture = frame::Video::new(format::Pixel::YUV420P, 1280, 720);
        for plane in 0..3 {
            picture
                .data_mut(plane)
                .fill(if plane == 0 { 200 } else { 128 });
        }
        let jpeg = Thumbnailer::new(10_000).encode(&picture).expect("jpeg");
        assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff], "JPEG SOI marker");
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9], "JPEG EOI marker");
    }
}
