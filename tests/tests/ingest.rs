//! The ingest node end to end: the ffmpeg CLI publishes over RTMP, the node transcodes with
//! the FFmpeg libraries, packages fMP4/HLS into S3 (moto), and ffprobe reads the result
//! through the gateway's CDN stand-in.

use std::process::Command;
use std::time::{Duration, Instant};

use rill_tests::{IngestNode, Stack, User, wait_for};
use serde_json::{Value, json};

async fn create(stack: &Stack, owner: &User, body: Value) -> (String, String) {
    owner.create_stream(stack, body).await
}

/// Pushes a generated test pattern (H.264 at 4000 kbit/s, above every rung, so the whole
/// ladder is encoded; AAC) as OBS/ffmpeg would; returns ffmpeg's success.
fn publish(rtmp: &str, key: &str, size: &str, seconds: u32, realtime: bool) -> bool {
    publish_at(rtmp, key, size, seconds, realtime, 4000)
}

fn publish_at(rtmp: &str, key: &str, size: &str, seconds: u32, realtime: bool, kbps: u32) -> bool {
    rill_tests::publish_rtmp(rtmp, key, size, seconds, realtime, kbps)
}

/// `codec,width,height,frames` of a rendition's video as ffprobe decodes it.
fn probe(url: &str) -> (String, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .expect("ffprobe");
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let (head, frames) = line.rsplit_once(',').unwrap_or((&line, "0"));
    (head.to_owned(), frames.trim().parse().unwrap_or(0.0))
}

/// Sum of the playlist's segment durations.
fn playlist_seconds(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|d| d.trim_end_matches(',').parse::<f64>().ok())
        .sum()
}

/// Waits for the stream at `path` (`/api/streams/{id}`) to reach `status`.
async fn wait_for_status(stack: &Stack, path: &str, status: &str, within: Duration) {
    wait_for(&format!("status {status}"), within, || async {
        User::anonymous().get(stack, path).await.body["status"] == status
    })
    .await;
}

/// Waits up to 30 s for the object at `path` to contain `needle` (a playlist tag).
async fn wait_for_playlist(stack: &Stack, path: &str, needle: &str) {
    wait_for(needle, Duration::from_secs(30), || async {
        text(stack, path).await.is_some_and(|p| p.contains(needle))
    })
    .await;
}

async fn text(stack: &Stack, path: &str) -> Option<String> {
    stack.text(path).await
}

/// Two streams of `owner` in `channel`, published at once at the given sizes for `seconds`
/// (real time), both waited for until `live`. Returns their ids and the publishers.
async fn two_live_streams(
    stack: &Stack,
    node: &IngestNode,
    owner: &User,
    channel: &str,
    sizes: [&'static str; 2],
    seconds: u32,
) -> (String, String, [std::thread::JoinHandle<bool>; 2]) {
    let (a, key_a) = create(stack, owner, json!({"channelId":channel,"title":"A"})).await;
    let (b, key_b) = create(stack, owner, json!({"channelId":channel,"title":"B"})).await;
    let (ra, rb) = (node.rtmp.clone(), node.rtmp.clone());
    let pa = std::thread::spawn(move || publish(&ra, &key_a, sizes[0], seconds, true));
    let pb = std::thread::spawn(move || publish(&rb, &key_b, sizes[1], seconds, true));
    for id in [&a, &b] {
        let path = format!("/api/streams/{id}");
        wait_for_status(stack, &path, "live", Duration::from_secs(60)).await;
    }
    (a, b, [pa, pb])
}

#[tokio::test]
async fn an_rtmp_publish_becomes_a_four_rung_ladder_that_goes_live_and_stays_as_vod() {
    let stack = Stack::start();
    // These tests check the ladder's nominal output (every rung's frame rate, the
    // passthrough's bitrate): the governor stays at level 0. Parallel tests on a 2-core
    // runner with a debug build are real CPU pressure, under which it would (rightly) halve
    // frame rates; its own behaviour is tested in transcode/tests.rs and by bench-overload.
    let node = IngestNode::start(&stack, &[("GOVERNOR", "off")]);
    let owner = User::named("owner");
    let (id, key) = create(
        &stack,
        &owner,
        json!({"channelId":"ingest","title":"Ladder"}),
    )
    .await;
    let rtmp = node.rtmp.clone();
    let pusher = std::thread::spawn(move || publish(&rtmp, &key, "1920x1080", 6, false));

    let stream_path = format!("/api/streams/{id}");
    wait_for_status(&stack, &stream_path, "live", Duration::from_secs(120)).await;
    let master = text(&stack, &format!("/hls/live/{id}/master.m3u8"))
        .await
        .expect("master playlist");
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 4, "{master}");
    for needle in [
        "RESOLUTION=1920x1080",
        "RESOLUTION=1280x720",
        "RESOLUTION=854x480",
        "RESOLUTION=640x360",
        "CODECS=\"avc1.",
        "mp4a.40.2",
        "AVERAGE-BANDWIDTH=",
        "FRAME-RATE=",
    ] {
        assert!(master.contains(needle), "{needle} missing in {master}");
    }
    let hls = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}/hls"))
        .await;
    assert!(
        hls.body["manifestUrl"]
            .as_str()
            .expect("url")
            .ends_with(&format!("/live/{id}/master.m3u8"))
    );
    assert!(
        pusher.join().expect("pusher thread"),
        "ffmpeg published successfully"
    );

    // A live thumbnail, listed on the stream since the owner set none.
    let thumb = format!("/live/{id}/thumb.jpg");
    wait_for("thumbnail URL", Duration::from_secs(30), || async {
        User::anonymous().get(&stack, &stream_path).await.body["thumbnailUrl"]
            == stack.url(&format!("/hls{thumb}")).as_str()
    })
    .await;
    let jpeg = stack
        .http
        .get(stack.url(&format!("/hls{thumb}")))
        .send()
        .await
        .expect("GET thumbnail");
    assert_eq!(jpeg.headers()["content-type"], "image/jpeg");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "csv=p=0", &stack.url(&format!("/hls{thumb}"))])
        .output()
        .expect("ffprobe");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "mjpeg,640,360");

    // The owner ends it: every playlist is closed and the recording plays as VOD.
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for rung in ["1080p", "720p", "480p", "360p", "audio"] {
        let path = format!("/hls/live/{id}/{rung}/index.m3u8");
        wait_for_playlist(&stack, &path, "#EXT-X-ENDLIST").await;
        let playlist = text(&stack, &path).await.expect("playlist");
        for d in playlist.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
            let secs: f64 = d.trim_end_matches(',').parse().expect("duration");
            assert!(
                secs <= 2.1,
                "{rung}: segment of {secs} s exceeds the target"
            );
        }
        assert!(playlist.contains("#EXT-X-PROGRAM-DATE-TIME:"));
    }
    let expected = [
        ("1080p", "h264,1920,1080", 30.0),
        ("720p", "h264,1280,720", 30.0),
        ("480p", "h264,854,480", 24.0),
        ("360p", "h264,640,360", 24.0),
    ];
    for (rung, want, fps) in expected {
        let url = stack.url(&format!("/hls/live/{id}/{rung}/index.m3u8"));
        let (got, frames) = probe(&url);
        assert_eq!(got, want, "{rung}");
        let seconds = playlist_seconds(
            &text(&stack, &format!("/hls/live/{id}/{rung}/index.m3u8"))
                .await
                .expect("playlist"),
        );
        let measured = frames / seconds;
        assert!(
            (measured - fps).abs() < 1.0,
            "{rung}: {frames} frames in {seconds} s = {measured:.2} fps, want {fps}"
        );
    }
    let decode = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            &stack.url(&format!("/hls/live/{id}/master.m3u8")),
            "-map",
            "0:v:0",
            "-map",
            "0:a:0",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let s = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert_eq!(s.body["status"], "ended");
}

/// The first media segment of a rendition, as stored.
async fn first_segment(stack: &Stack, id: &str, rung: &str) -> Vec<u8> {
    let playlist = text(stack, &format!("/hls/live/{id}/{rung}/index.m3u8"))
        .await
        .expect("playlist");
    let uri = playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .expect("a segment");
    let r = stack
        .http
        .get(stack.url(&format!("/hls/live/{id}/{rung}/{uri}")))
        .send()
        .await
        .expect("GET segment");
    r.bytes().await.expect("segment bytes").to_vec()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_source_that_fits_the_top_rung_is_passed_through_and_the_rest_encoded() {
    let stack = Stack::start();
    // Nominal output checked (see the four-rung test): the governor stays at level 0.
    let node = IngestNode::start(&stack, &[("GOVERNOR", "off")]);
    let owner = User::named("owner");
    let (id, key) = create(&stack, &owner, json!({"channelId":"ingest","title":"Fits"})).await;
    let rtmp = node.rtmp.clone();
    // 1080p30 at 2000 kbit/s with a keyframe every 2 s: everything the 1080p rung promises.
    // Not closer to the rung's 3000: the probe's first 2.1 s hold two IDRs and the
    // encoder's initial VBV burst, so a 2500 kbit/s source measured 2960-2990 and now
    // and then crossed 3000 (re-encoded, and this test failed in CI).
    let pusher = std::thread::spawn(move || publish_at(&rtmp, &key, "1920x1080", 8, false, 2000));
    let stream_path = format!("/api/streams/{id}");
    wait_for_status(&stack, &stream_path, "live", Duration::from_secs(120)).await;
    assert!(pusher.join().expect("pusher"), "ffmpeg published");
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let top = format!("/hls/live/{id}/1080p/index.m3u8");
    wait_for_playlist(&stack, &top, "#EXT-X-ENDLIST").await;
    // x264 writes its settings into an SEI of every IDR: the top rung carries the
    // publisher's encoder (2000 kbit/s), the next rung ours (1500 kbit/s).
    let passed = first_segment(&stack, &id, "1080p").await;
    assert!(contains(&passed, "bitrate=2000"), "1080p is not the source");
    let encoded = first_segment(&stack, &id, "720p").await;
    assert!(contains(&encoded, "bitrate=1500"), "720p is not our encode");
    let playlist = text(&stack, &top).await.expect("playlist");
    for d in playlist.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
        let secs: f64 = d.trim_end_matches(',').parse().expect("duration");
        assert!(
            secs <= 2.1,
            "segment of {secs} s: cut off the source's keyframes"
        );
    }
    let (got, frames) = probe(&stack.url(&top));
    assert_eq!(got, "h264,1920,1080");
    let fps = frames / playlist_seconds(&playlist);
    assert!((fps - 30.0).abs() < 1.0, "{fps} fps");
}

#[tokio::test]
async fn a_wrong_key_or_an_ended_stream_is_refused_and_nothing_is_written() {
    let stack = Stack::start();
    let node = IngestNode::start(&stack, &[]);
    let owner = User::named("owner");
    let (id, key) = create(
        &stack,
        &owner,
        json!({"channelId":"ingest","title":"Refusals"}),
    )
    .await;
    let fake = rill_core::key::StreamKey::generate().expect("rng");
    assert!(
        !publish(&node.rtmp, fake.expose(), "320x240", 2, false),
        "an unknown key is refused"
    );
    owner
        .post(&stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    assert!(
        !publish(&node.rtmp, &key, "320x240", 2, false),
        "an ended stream takes no media"
    );
    let s3 = stack.s3().await;
    let listed = s3
        .list_objects_v2()
        .bucket(&stack.bucket)
        .send()
        .await
        .expect("list");
    assert_eq!(
        listed.key_count().unwrap_or(0),
        0,
        "nothing was written to the bucket"
    );
    let s = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert_eq!(s.body["status"], "ended");
}

#[tokio::test]
async fn a_publisher_that_comes_back_within_the_window_continues_the_playlists() {
    let stack = Stack::start();
    let node = IngestNode::start(&stack, &[("RECONNECT_WINDOW_SECONDS", "6")]);
    let owner = User::named("owner");
    let (id, key) = create(
        &stack,
        &owner,
        json!({"channelId":"ingest","title":"Flaky uplink"}),
    )
    .await;
    let path = format!("/api/streams/{id}");
    let playlist = format!("/hls/live/{id}/360p/index.m3u8");
    assert!(
        publish(&node.rtmp, &key, "640x360", 3, true),
        "first session"
    );
    wait_for_status(&stack, &path, "live", Duration::from_secs(30)).await;
    let before = text(&stack, &playlist).await.expect("playlist");
    let segments_before = playlist_seconds(&before);

    // The publisher drops and returns within the window: same stream, same playlists. A
    // node still draining the first session's queue (a loaded machine) refuses the return
    // as "already publishing" for a moment; the publisher retries, as OBS does.
    let back = (0..4).any(|_| {
        let ok = publish(&node.rtmp, &key, "640x360", 3, true);
        if !ok {
            std::thread::sleep(Duration::from_millis(500));
        }
        ok
    });
    assert!(back, "second session");
    wait_for_playlist(&stack, &playlist, "#EXT-X-DISCONTINUITY").await;
    assert_eq!(
        User::anonymous().get(&stack, &path).await.body["status"],
        "live",
        "a reconnect within the window keeps the stream live"
    );

    // Then it stays away: the window passes, the stream ends and the recording is whole.
    wait_for_playlist(&stack, &playlist, "#EXT-X-ENDLIST").await;
    let after = text(&stack, &playlist).await.expect("playlist");
    assert_eq!(after.matches("#EXT-X-DISCONTINUITY").count(), 1, "{after}");
    let uris = |p: &str| -> Vec<String> {
        p.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert!(
        uris(&after).starts_with(&uris(&before)),
        "the first session's segments stay listed, in order:\n{before}\n---\n{after}"
    );
    // Program date-times keep moving forward across the reconnect (players and the
    // latency display sync on them).
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = after
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("PDT"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "PROGRAM-DATE-TIME goes back:\n{after}"
    );
    assert!(playlist_seconds(&after) > segments_before + 2.0, "{after}");
    // The playlists are closed first, then the status is written.
    wait_for_status(&stack, &path, "ended", Duration::from_secs(10)).await;
    let (got, _) = probe(&stack.url(&playlist));
    assert_eq!(
        got, "h264,640,360",
        "the recording decodes across the discontinuity"
    );
}

#[tokio::test]
async fn two_streams_at_once_stay_independent_and_sigterm_finalises_both() {
    let stack = Stack::start();
    let mut node = IngestNode::start(&stack, &[]);
    let owner = User::named("owner");
    let (a, b, publishers) =
        two_live_streams(&stack, &node, &owner, "two", ["640x360", "854x480"], 30).await;
    let ma = text(&stack, &format!("/hls/live/{a}/master.m3u8"))
        .await
        .expect("master a");
    let mb = text(&stack, &format!("/hls/live/{b}/master.m3u8"))
        .await
        .expect("master b");
    assert_eq!(
        ma.matches("#EXT-X-STREAM-INF").count(),
        1,
        "a 360p source gets one rung: {ma}"
    );
    assert_eq!(
        mb.matches("#EXT-X-STREAM-INF").count(),
        2,
        "a 480p source gets two rungs: {mb}"
    );
    assert_publishing(&node, &a).await;

    let status = node.terminate().expect("the node exits after SIGTERM");
    assert!(status.success());
    for (id, rung) in [(&a, "360p"), (&b, "480p")] {
        let p = text(&stack, &format!("/hls/live/{id}/{rung}/index.m3u8"))
            .await
            .expect("playlist");
        assert!(p.contains("#EXT-X-ENDLIST"), "{id} finalised on shutdown");
        let s = User::anonymous()
            .get(&stack, &format!("/api/streams/{id}"))
            .await;
        assert_eq!(s.body["status"], "ended");
    }
    for p in publishers {
        let _ = p.join();
    }
}

/// The node's `/metrics` says a publisher is attached to `id`.
async fn assert_publishing(node: &IngestNode, id: &str) {
    let metrics = reqwest::get(format!("{}/metrics", node.http))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!("rill_ingest_publishing{{stream_id=\"{id}\"}} 1")),
        "{metrics}"
    );
}

/// Segments listed in a media playlist.
fn segment_count(playlist: &str) -> usize {
    playlist.matches("#EXTINF:").count()
}

#[tokio::test]
async fn a_panic_in_one_streams_pipeline_ends_that_stream_only() {
    let stack = Stack::start();
    let node = IngestNode::start(&stack, &[("RILL_FAULT_HOOKS", "1")]);
    let owner = User::named("owner");
    let (a, b, publishers) =
        two_live_streams(&stack, &node, &owner, "sup", ["640x360", "640x360"], 25).await;
    let fault = stack
        .http
        .post(format!("{}/_fault/panic/{a}", node.http))
        .send()
        .await
        .expect("fault hook");
    assert_eq!(fault.status(), 202, "the hook reached stream A's pipeline");

    // A is finalised: its playlist closed, its status ended.
    let playlist_a = format!("/hls/live/{a}/360p/index.m3u8");
    wait_for_playlist(&stack, &playlist_a, "#EXT-X-ENDLIST").await;
    wait_for_status(
        &stack,
        &format!("/api/streams/{a}"),
        "ended",
        Duration::from_secs(10),
    )
    .await;

    // B carries on: still live, and new segments keep coming after A died.
    let playlist_b = format!("/hls/live/{b}/360p/index.m3u8");
    let then = segment_count(&text(&stack, &playlist_b).await.expect("B's playlist"));
    wait_for("B's playlist to grow", Duration::from_secs(15), || async {
        text(&stack, &playlist_b)
            .await
            .is_some_and(|p| segment_count(&p) >= then + 3 && !p.contains("#EXT-X-ENDLIST"))
    })
    .await;
    assert_eq!(
        User::anonymous()
            .get(&stack, &format!("/api/streams/{b}"))
            .await
            .body["status"],
        "live"
    );
    // The node itself is fine.
    assert_publishing(&node, &b).await;
    for p in publishers {
        let _ = p.join();
    }
}

#[tokio::test]
async fn a_reconnected_publisher_is_not_cut_off_one_window_after_its_first_drop() {
    let stack = Stack::start();
    let node = IngestNode::start(&stack, &[("RECONNECT_WINDOW_SECONDS", "4")]);
    let owner = User::named("owner");
    let (id, key) = create(&stack, &owner, json!({"channelId":"re","title":"Back"})).await;
    let path = format!("/api/streams/{id}");
    assert!(
        publish(&node.rtmp, &key, "640x360", 3, true),
        "first session"
    );
    wait_for_status(&stack, &path, "live", Duration::from_secs(30)).await;
    // The second session lasts three windows; the stream must stay live all along.
    let rtmp = node.rtmp.clone();
    let second = std::thread::spawn(move || publish(&rtmp, &key, "640x360", 12, true));
    let started = Instant::now();
    while !second.is_finished() {
        if started.elapsed() > Duration::from_secs(2) {
            assert_eq!(
                User::anonymous().get(&stack, &path).await.body["status"],
                "live",
                "{:.1} s into the second session",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(second.join().unwrap_or(false), "second session");
    assert!(started.elapsed() > Duration::from_secs(10));
}
