//! End-to-end tests against the real `ffmpeg` CLI as the publisher (the same client code
//! path — libavformat's rtmpproto — many encoders use). They need `ffmpeg` on PATH and
//! fail loudly without it: the RTMP server is only as good as its interop.

use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

use super::server::RtmpServer;
use crate::media::{AudioCodec, MediaEvent, NalFraming};
use crate::publish::{Authoriser, PublishRequest, PublishSink, Refusal};

const GOOD_KEY: &str = "sk_live_7f3a9c0e1b2d";

struct Harness {
    addr: SocketAddr,
    media: mpsc::Receiver<MediaEvent>,
    calls: Arc<AtomicUsize>,
    _shutdown: watch::Sender<bool>,
}

/// A server on port 0 that accepts only [`GOOD_KEY`] in app `live`.
async fn server(sink_capacity: usize) -> Harness {
    let (tx, media) = mpsc::channel(sink_capacity);
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    let auth: Arc<dyn Authoriser> = Arc::new(move |req: PublishRequest| {
        calls2.fetch_add(1, Ordering::SeqCst);
        let tx = tx.clone();
        async move {
            if req.app.as_deref() == Some("live") && req.stream_key.expose() == GOOD_KEY {
                Ok(PublishSink::new(tx).with_label("test-stream"))
            } else {
                Err(Refusal::BadKey)
            }
        }
    });
    let (server, addr) = RtmpServer::bind("127.0.0.1:0", auth).await.unwrap();
    let (shutdown, rx) = watch::channel(false);
    tokio::spawn(server.run(rx));
    Harness {
        addr,
        media,
        calls,
        _shutdown: shutdown,
    }
}

async fn ffmpeg(addr: SocketAddr, key: &str, audio_codec: &str) -> Output {
    let url = format!("rtmp://127.0.0.1:{}/live/{key}", addr.port());
    let run = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-g", "60",
        ])
        .args(["-c:a", audio_codec, "-f", "flv", &url])
        .kill_on_drop(true)
        .output();
    timeout(Duration::from_secs(60), run)
        .await
        .expect("ffmpeg did not finish in 60 s")
        .expect("ffmpeg must be installed to run the RTMP interop tests")
}

/// Receives events until End (or the timeout), in order.
async fn collect_until_end(rx: &mut mpsc::Receiver<MediaEvent>) -> Vec<MediaEvent> {
    let mut events = Vec::new();
    while let Ok(Some(ev)) = timeout(Duration::from_secs(20), rx.recv()).await {
        let end = ev == MediaEvent::End;
        events.push(ev);
        if end {
            break;
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_with_accepted_key_delivers_configs_frames_and_end() {
    // A small sink and a late reader: the connection must wait, not drop or buffer.
    let mut h = server(4).await;
    let publisher = tokio::spawn(ffmpeg(h.addr, GOOD_KEY, "aac"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = collect_until_end(&mut h.media).await;
    let out = publisher.await.unwrap();
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);

    assert_eq!(
        events.last(),
        Some(&MediaEvent::End),
        "no End: {} events",
        events.len()
    );
    assert_eq!(events.iter().filter(|e| **e == MediaEvent::End).count(), 1);

    let meta = events
        .iter()
        .find(|e| matches!(e, MediaEvent::Metadata { .. }));
    assert!(
        matches!(
            meta,
            Some(MediaEvent::Metadata {
                width: Some(640),
                height: Some(360),
                ..
            })
        ),
        "{meta:?}"
    );

    let first_video = events
        .iter()
        .position(|e| matches!(e, MediaEvent::Video { .. }))
        .unwrap();
    let video_config = events
        .iter()
        .position(|e| matches!(e, MediaEvent::VideoConfig { .. }))
        .unwrap();
    assert!(
        video_config < first_video,
        "VideoConfig must precede frames"
    );
    let MediaEvent::VideoConfig { avcc } = &events[video_config] else {
        unreachable!()
    };
    assert_eq!(avcc[0], 1, "avcC version");
    assert_eq!(avcc[4] & 3, 3, "4-byte NAL lengths");

    let first_audio = events
        .iter()
        .position(|e| matches!(e, MediaEvent::Audio { .. }))
        .unwrap();
    let audio_config = events
        .iter()
        .position(|e| matches!(e, MediaEvent::AudioConfig { .. }))
        .unwrap();
    assert!(
        audio_config < first_audio,
        "AudioConfig must precede frames"
    );
    assert!(matches!(
        events[audio_config],
        MediaEvent::AudioConfig {
            codec: AudioCodec::Aac,
            sample_rate: 48000,
            channels: 1,
            ..
        }
    ));

    let video: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Video {
                pts_ms,
                dts_ms,
                keyframe,
                framing,
                data,
            } => Some((*pts_ms, *dts_ms, *keyframe, *framing, data.len())),
            _ => None,
        })
        .collect();
    assert!(video.len() >= 60, "only {} video frames", video.len());
    assert!(video[0].2, "first frame must be a keyframe");
    assert!(video.iter().all(|v| v.3 == NalFraming::Avcc && v.4 > 4));
    assert!(
        video.windows(2).all(|w| w[0].1 < w[1].1),
        "video dts not increasing"
    );
    assert!(video.iter().all(|v| v.0 >= v.1), "pts before dts");
    assert!(
        video.iter().any(|v| v.0 > v.1),
        "x264 veryfast uses B-frames: expected pts > dts"
    );
    let keyframes = video.iter().filter(|v| v.2).count();
    assert!(
        keyframes >= 2,
        "-g 60 over 90 frames gives 2 keyframes, got {keyframes}"
    );

    let audio: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Audio { pts_ms, .. } => Some(*pts_ms),
            _ => None,
        })
        .collect();
    assert!(audio.len() >= 100, "only {} audio frames", audio.len());
    assert!(
        audio.windows(2).all(|w| w[0] <= w[1]),
        "audio pts not monotonic"
    );
    eprintln!(
        "received {} video frames, {} audio frames",
        video.len(),
        audio.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_with_refused_key_fails_and_produces_no_media() {
    let mut h = server(16).await;
    let out = ffmpeg(h.addr, "sk_wrong_key", "aac").await;
    assert!(!out.status.success(), "ffmpeg succeeded with a refused key");
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Invalid stream key"),
        "ffmpeg said: {stderr}"
    );
    // The sender lives on in the authoriser, so an empty channel means nothing was sent.
    assert!(matches!(
        h.media.try_recv(),
        Err(mpsc::error::TryRecvError::Empty)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_with_mp3_audio_is_cut_off_with_end() {
    let mut h = server(64).await;
    let out = ffmpeg(h.addr, GOOD_KEY, "libmp3lame").await;
    let events = collect_until_end(&mut h.media).await;
    assert!(
        !out.status.success(),
        "ffmpeg kept publishing after the codec was refused"
    );
    assert_eq!(events.last(), Some(&MediaEvent::End));
    assert!(!events.iter().any(|e| matches!(e, MediaEvent::Audio { .. })));
}
