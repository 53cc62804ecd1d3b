//! End-to-end tests of the WHIP endpoint.
//!
//! The browser tests publish from a real WebRTC stack: headless Chromium with its fake
//! camera and microphone, driven by a tiny WHIP client page (`test_page.html`) that is
//! served from a *different* origin than the WHIP endpoint, so CORS is exercised too. The
//! page reports each step back to its own server; no browser driver is involved. They need
//! `chromium` (Debian package; `CHROMIUM=/path` overrides) and fail loudly without it. They
//! run one at a time (a process-wide lock): two H.264 encoders on a 2-core runner starve
//! each other.
//!
//! The HTTP tests (`http.rs`) use a canned Chromium offer and reqwest; no media flows in those.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::offer::tests::CHROME_OFFER;
use super::{WhipConfig, WhipHandle, WhipServer};
use crate::bitstream::h264::{annexb_nals, nal_type};
use crate::media::{AudioCodec, MediaEvent, NalFraming};
use crate::publish::{Protocol, PublishRequest, PublishSink, Refusal};

mod http;

const STREAM: &str = "01JTESTSTREAM0000000000001";
const GOOD_KEY: &str = "sk_whip_3b9d8e7f6a5c4b3a";

/// Serialises the browser tests (see the module docs).
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The authoriser's verdict for one key: anything not listed is a bad key.
fn policy(req: &PublishRequest) -> Result<(), Refusal> {
    if req.protocol != Protocol::WebRtc {
        // WHIP requests must say so: quality samples and encoder choices depend on it.
        return Err(Refusal::Unavailable);
    }
    match req.stream_key.expose() {
        GOOD_KEY if req.stream_id.as_deref() == Some(STREAM) => Ok(()),
        "ended" => Err(Refusal::NotAllowed("This stream has ended.".into())),
        "busy" => Err(Refusal::AlreadyPublishing),
        "down" => Err(Refusal::Unavailable),
        "full" => Err(Refusal::NodeFull),
        "elsewhere" => Err(Refusal::HeldElsewhere),
        _ => Err(Refusal::BadKey),
    }
}

struct Harness {
    base: String,
    handle: WhipHandle,
    media: mpsc::Receiver<MediaEvent>,
    /// (stream id, key) of every authorisation request.
    calls: Arc<Mutex<Vec<(String, String)>>>,
    shutdown: watch::Sender<bool>,
    engine: JoinHandle<()>,
}

async fn harness(config: WhipConfig) -> Harness {
    let (tx, media) = mpsc::channel(4096);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let auth = Arc::new(move |req: PublishRequest| {
        seen.lock().unwrap().push((
            req.stream_id.clone().unwrap_or_default(),
            req.stream_key.expose().to_owned(),
        ));
        let verdict = policy(&req).map(|()| PublishSink::new(tx.clone()).with_label("test"));
        async move { verdict }
    });
    let server = WhipServer::bind(config, auth).await.unwrap();
    let handle = server.handle();
    let (shutdown, rx) = watch::channel(false);
    let engine = tokio::spawn(server.run(rx));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app: axum::Router = handle.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Harness {
        base,
        handle,
        media,
        calls,
        shutdown,
        engine,
    }
}

impl Harness {
    fn endpoint(&self) -> String {
        format!("{}/whip/{STREAM}", self.base)
    }

    /// Events until (and including) End.
    async fn events_until_end(&mut self, within: Duration) -> Vec<MediaEvent> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.media.recv()).await {
                Ok(Some(ev)) => {
                    let end = ev == MediaEvent::End;
                    got.push(ev);
                    if end {
                        return got;
                    }
                }
                Ok(None) => panic!("sink closed without End after {} events", got.len()),
                Err(_) => panic!("no End within {within:?}; {} events", got.len()),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Browser side

/// Serves the test page and collects its reports.
struct Page {
    base: String,
    reports: mpsc::UnboundedReceiver<Value>,
}

async fn page_server() -> Page {
    let (tx, reports) = mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new()
        .route(
            "/",
            get(|| async { axum::response::Html(include_str!("../test_page.html")) }),
        )
        .route(
            "/report",
            post(
                |State(tx): State<mpsc::UnboundedSender<Value>>, Json(v): Json<Value>| async move {
                    let _ = tx.send(v);
                },
            ),
        )
        .with_state(tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Page { base, reports }
}

fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

/// A headless Chromium in its own process group and profile; killed (group and all) and
/// cleaned up on drop.
struct Browser {
    child: tokio::process::Child,
    profile: PathBuf,
}

static PROFILES: AtomicUsize = AtomicUsize::new(0);

impl Browser {
    fn launch(url: &str) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "rill-whip-chromium-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(profile.join("chromium.log")).unwrap();
        let child = tokio::process::Command::new(chromium_path())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--mute-audio",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): `apt-get install -y chromium`, or set CHROMIUM",
                    chromium_path()
                )
            });
        Browser { child, profile }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.profile.join("chromium.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGKILL to the whole process group (renderers, GPU and zygote processes too).
    fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
        let _ = self.child.try_wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A browser publishing to `endpoint` with `key`.
struct Publisher {
    page: Page,
    browser: Browser,
}

impl Publisher {
    fn start(page: Page, endpoint: &str, key: &str, hold_ms: u64, delete: bool) -> Publisher {
        let url = format!(
            "{}/?whip={}&key={}&hold={hold_ms}&delete={}",
            page.base,
            urlencode(endpoint),
            urlencode(key),
            u8::from(delete)
        );
        let browser = Browser::launch(&url);
        Publisher { page, browser }
    }

    /// The next report of `stage` (earlier stages are skipped); an `error` report fails.
    async fn report(&mut self, stage: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.page.reports.recv()).await {
                Ok(Some(v)) if v["stage"] == stage => return v,
                Ok(Some(v)) if v["stage"] == "error" => {
                    panic!(
                        "page failed: {v}\n--- chromium ---\n{}",
                        self.browser.log_tail()
                    )
                }
                Ok(Some(_)) => {}
                Ok(None) => unreachable!("the page server lives as long as the test"),
                Err(_) => panic!(
                    "no `{stage}` report within {within:?}\n--- chromium ---\n{}",
                    self.browser.log_tail()
                ),
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn first_nal_types(data: &[u8]) -> Vec<u8> {
    annexb_nals(data).iter().map(|n| nal_type(n)).collect()
}

/// Checks the order and content of one publish's events; returns (video, audio) counts.
fn check_publish(events: &[MediaEvent]) -> (usize, usize) {
    assert_eq!(
        events.first(),
        Some(&MediaEvent::AudioConfig {
            codec: AudioCodec::Opus,
            config: bytes::Bytes::new(),
            sample_rate: 48_000,
            channels: 2
        }),
        "AudioConfig comes first"
    );
    assert_eq!(events.last(), Some(&MediaEvent::End));
    assert_eq!(
        events.iter().filter(|e| **e == MediaEvent::End).count(),
        1,
        "exactly one End"
    );
    let video: Vec<(i64, i64, bool, &[u8])> = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Video {
                pts_ms,
                dts_ms,
                keyframe,
                framing,
                data,
            } => {
                assert_eq!(*framing, NalFraming::AnnexB);
                Some((*pts_ms, *dts_ms, *keyframe, &data[..]))
            }
            _ => None,
        })
        .collect();
    let audio: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Audio {
                codec: AudioCodec::Opus,
                pts_ms,
                data,
            } => {
                assert!(!data.is_empty());
                Some(*pts_ms)
            }
            MediaEvent::Audio { codec, .. } => panic!("audio codec {codec:?}"),
            _ => None,
        })
        .collect();
    let (pts, _, key, data) = *video.first().expect("video frames");
    assert!(key, "the first video frame is a keyframe");
    assert_eq!(&data[..4], &[0, 0, 0, 1], "Annex B start code");
    let types = first_nal_types(data);
    for needed in [7, 8, 5] {
        assert!(types.contains(&needed), "SPS/PPS/IDR in {types:?}");
    }
    assert!((0..2000).contains(&pts), "first video pts {pts}");
    assert!(
        (0..2000).contains(&audio[0]),
        "first audio pts {}",
        audio[0]
    );
    assert!(
        video.iter().all(|(p, d, _, _)| p == d),
        "no B-frames: pts == dts"
    );
    assert!(
        video.windows(2).all(|w| w[0].0 < w[1].0),
        "video pts strictly increasing"
    );
    assert!(
        audio.windows(2).all(|w| w[0] <= w[1]),
        "audio pts non-decreasing"
    );
    // Both tracks cover the same wall-clock span, on one timeline.
    let span_v = video.last().unwrap().0 - pts;
    let span_a = audio.last().unwrap() - audio[0];
    assert!(
        (span_v - span_a).abs() < 1500,
        "video {span_v} ms vs audio {span_a} ms"
    );
    (video.len(), audio.len())
}

#[tokio::test]
async fn chromium_publishes_h264_and_opus_and_delete_ends_the_session() {
    let _one_browser = BROWSER.lock().await;
    let mut h = harness(WhipConfig::default()).await;
    let mut publisher = Publisher::start(page_server().await, &h.endpoint(), GOOD_KEY, 4000, true);

    let answered = publisher.report("answered", Duration::from_secs(20)).await;
    assert_eq!(answered["status"], 201);
    assert_eq!(answered["contentType"], "application/sdp");
    let location = answered["location"].as_str().unwrap();
    assert!(
        location.starts_with(&format!("/whip/{STREAM}/")) && location.len() > 40,
        "{location}"
    );
    let answer = answered["answer"].as_str().unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("H264/90000"), "{answer}");
    assert!(
        !answer.contains("VP8/90000"),
        "only H.264 is accepted: {answer}"
    );
    assert!(
        answer.contains(&format!("{} typ host", h.handle.candidate_addr().port())),
        "{answer}"
    );
    let connection = publisher
        .report("connection", Duration::from_secs(15))
        .await;
    assert_eq!(connection["state"], "connected", "{connection}");

    // While it runs: the stats the node's quality samples read.
    let mut stats = None;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(s) = h.handle.stream_stats(STREAM)
            && s.video_frames > 30
            && s.bitrate_kbps > 0.0
            && s.packets_received > 0
        {
            stats = Some(s);
            break;
        }
    }
    let stats = stats.unwrap_or_else(|| panic!("no stats: {:?}", h.handle.sessions()));
    assert!(stats.connected);
    assert!(stats.fps > 5.0, "{stats:?}");
    assert!(stats.keyframes >= 1, "{stats:?}");
    eprintln!("live stats: {stats:?}");

    let sent = publisher.report("sent", Duration::from_secs(15)).await;
    assert_eq!(sent["videoCodec"], "video/H264");
    eprintln!("browser side: {sent}");
    let deleted = publisher.report("deleted", Duration::from_secs(15)).await;
    assert_eq!(deleted["status"], 200);

    let events = h.events_until_end(Duration::from_secs(15)).await;
    let (video, audio) = check_publish(&events);
    eprintln!("{video} video frames, {audio} audio frames");
    assert!(video >= 30, "{video} video frames in ~4 s");
    assert!(audio >= 50, "{audio} audio frames in ~4 s");
    assert!(h.handle.sessions().is_empty());
    assert_eq!(
        *h.calls.lock().unwrap(),
        vec![(STREAM.to_owned(), GOOD_KEY.to_owned())]
    );
}

#[tokio::test]
async fn chromium_with_a_wrong_key_gets_401_and_no_media() {
    let _one_browser = BROWSER.lock().await;
    let mut h = harness(WhipConfig::default()).await;
    let mut publisher = Publisher::start(page_server().await, &h.endpoint(), "nope", 1000, true);
    let post = publisher.report("post", Duration::from_secs(20)).await;
    assert_eq!(post["status"], 401, "{post}");
    let body: Value = serde_json::from_str(post["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_stream_key");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        h.media.try_recv().is_err(),
        "a refused publish produces no event"
    );
    assert!(h.handle.sessions().is_empty());
    assert_eq!(
        *h.calls.lock().unwrap(),
        vec![(STREAM.to_owned(), "nope".to_owned())]
    );
}

#[tokio::test]
async fn a_vanished_browser_ends_the_session_after_the_idle_timeout() {
    let _one_browser = BROWSER.lock().await;
    let config = WhipConfig {
        idle_timeout: Duration::from_secs(2),
        ..WhipConfig::default()
    };
    let mut h = harness(config).await;
    let mut publisher =
        Publisher::start(page_server().await, &h.endpoint(), GOOD_KEY, 60_000, false);
    publisher
        .report("connection", Duration::from_secs(20))
        .await;
    // Media flows...
    let mut video = 0;
    while video < 10 {
        match timeout(Duration::from_secs(10), h.media.recv()).await {
            Ok(Some(MediaEvent::Video { .. })) => video += 1,
            Ok(Some(MediaEvent::End)) => panic!("ended early"),
            Ok(Some(_)) => {}
            other => panic!("no video: {other:?}"),
        }
    }
    // ...until the browser dies without a word (no DELETE, no DTLS close).
    let killed = Instant::now();
    publisher.browser.kill();
    loop {
        match timeout(Duration::from_secs(10), h.media.recv()).await {
            Ok(Some(MediaEvent::End)) => break,
            Ok(Some(_)) => {}
            other => panic!("no End: {other:?}"),
        }
    }
    let took = killed.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(h.handle.sessions().is_empty());
}

#[tokio::test]
async fn shutdown_ends_a_live_session_and_run_returns() {
    let _one_browser = BROWSER.lock().await;
    let mut h = harness(WhipConfig::default()).await;
    let mut publisher =
        Publisher::start(page_server().await, &h.endpoint(), GOOD_KEY, 60_000, false);
    publisher
        .report("connection", Duration::from_secs(20))
        .await;
    loop {
        match timeout(Duration::from_secs(10), h.media.recv()).await {
            Ok(Some(MediaEvent::Video { .. })) => break,
            Ok(Some(_)) => {}
            other => panic!("no video: {other:?}"),
        }
    }
    h.shutdown.send(true).unwrap();
    loop {
        match timeout(Duration::from_secs(5), h.media.recv()).await {
            Ok(Some(MediaEvent::End)) => break,
            Ok(Some(_)) => {}
            other => panic!("no End: {other:?}"),
        }
    }
    timeout(Duration::from_secs(5), h.engine)
        .await
        .unwrap()
        .unwrap();
    // New publishes are refused: the engine is gone.
    let status = reqwest::Client::new()
        .post(format!("{}/whip/{STREAM}", h.base))
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {GOOD_KEY}"))
        .body(CHROME_OFFER)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);
}

// ---------------------------------------------------------------------------------------
// HTTP only (canned offer, no media)

/// Payload types of `codec` (e.g. `H264/90000`) in an SDP.
fn payload_types(sdp: &str, codec: &str) -> Vec<u8> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, enc)| enc.eq_ignore_ascii_case(codec))
        .filter_map(|(pt, _)| pt.parse().ok())
        .collect()
}

#[tokio::test]
async fn lost_video_is_recovered_with_a_keyframe_request() {
    let _one_browser = BROWSER.lock().await;
    let mut h = harness(WhipConfig::default()).await;
    let mut publisher = Publisher::start(page_server().await, &h.endpoint(), GOOD_KEY, 8000, true);
    let answered = publisher.report("answered", Duration::from_secs(20)).await;
    let answer = answered["answer"].as_str().unwrap();
    let h264 = payload_types(answer, "H264/90000");
    let rtx = payload_types(answer, "rtx/90000");
    assert!(!h264.is_empty() && !rtx.is_empty(), "{answer}");
    publisher
        .report("connection", Duration::from_secs(20))
        .await;
    let mut events = Vec::new();
    let mut video = 0;
    while video < 20 {
        let ev = timeout(Duration::from_secs(10), h.media.recv())
            .await
            .expect("video flows")
            .expect("sink open");
        video += usize::from(matches!(ev, MediaEvent::Video { .. }));
        events.push(ev);
    }
    // For 2 s, every 15th H.264 packet is lost and no retransmission gets through: NACKs
    // cannot repair that, so str0m hands on frames that are not contiguous.
    *h.handle.shared.drop_rtp.lock().unwrap() = Some(Box::new(move |p: &[u8]| {
        let pt = p[1] & 0x7f;
        let seq = u16::from_be_bytes([p[2], p[3]]);
        rtx.contains(&pt) || (h264.contains(&pt) && seq % 15 == 7)
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    *h.handle.shared.drop_rtp.lock().unwrap() = None;
    let mut stats = None;
    loop {
        let ev = timeout(Duration::from_secs(15), h.media.recv())
            .await
            .expect("End comes")
            .expect("sink open");
        if let Some(s) = h.handle.stream_stats(STREAM) {
            stats = Some(s);
        }
        let end = ev == MediaEvent::End;
        events.push(ev);
        if end {
            break;
        }
    }
    publisher.report("deleted", Duration::from_secs(15)).await;
    let stats = stats.expect("stats while live");
    eprintln!("after the loss: {stats:?}");
    assert!(stats.keyframe_requests >= 1, "{stats:?}");
    assert!(stats.dropped_frames >= 1, "{stats:?}");
    assert!(stats.nacks_sent >= 1, "{stats:?}");
    check_publish(&events);
    let video: Vec<(i64, bool)> = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Video {
                pts_ms, keyframe, ..
            } => Some((*pts_ms, *keyframe)),
            _ => None,
        })
        .collect();
    let keyframes = video.iter().filter(|(_, k)| *k).count();
    assert!(keyframes >= 2, "a new keyframe after the loss: {keyframes}");
    // Frames held back while waiting for it leave a hole that ends on a keyframe.
    let resumed = video.windows(2).any(|w| w[1].0 - w[0].0 > 100 && w[1].1);
    assert!(resumed, "{video:?}");
    let last_key = video.iter().rposition(|(_, k)| *k).unwrap_or(0);
    assert!(
        video.len() > last_key + 10,
        "video continues after the recovery"
    );
}
