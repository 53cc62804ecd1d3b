//! Storage failing under a live stream: a real `rill-ingest` reaches S3 (moto) or
//! DynamoDB through a fault-injecting proxy (`rill_tests::counting::Fault`), ffmpeg
//! publishes over RTMP, and the playlists are read back through the gateway's `/hls`.
//!
//! - A 10 s outage (every request refused) loses nothing: once the bucket is back every
//!   segment is stored, each rendition's playlist lists positions 0..n without a hole or a
//!   gap, and the node's upload backlog held the media meanwhile.
//! - A longer outage (every request stalled) past the node's backlog bound
//!   (`UPLOAD_BACKLOG_MB=1`) drops the oldest unsent segments as `#EXT-X-GAP` entries: the
//!   media sequence stays whole, every listed segment that is not a gap is stored, and the
//!   backlog never exceeds its bound.
//! - A 10 s table outage (every request stalled) does not hold the media up: segments keep
//!   being listed during it, and the quality samples taken during it are stored once the
//!   table is back; the stream then ends as usual.

use std::time::{Duration, Instant};

use rill_tests::counting::Fault;
use rill_tests::{Counter, IngestNode, RtmpPublisher, Stack, User, dynamodb_url, wait_for};
use serde_json::json;

/// One value of the node's `/metrics` for `stream`.
async fn metric(node: &IngestNode, name: &str, stream: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", node.http))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics body");
    let prefix = format!("{name}{{stream_id=\"{stream}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn wait_for_status(stack: &Stack, id: &str, status: &str, within: Duration) {
    let path = format!("/api/streams/{id}");
    wait_for(&format!("status {status}"), within, || async {
        User::anonymous().get(stack, &path).await.body["status"] == status
    })
    .await;
}

/// One listed segment: its object name and whether it is marked `#EXT-X-GAP`.
#[derive(Debug)]
struct Entry {
    uri: String,
    gap: bool,
}

/// The media playlists a master playlist names, and for each its entries (checked to
/// start at media sequence 0 and to end with `#EXT-X-ENDLIST`).
async fn recording(stack: &Stack, id: &str) -> Vec<(String, Vec<Entry>)> {
    let master = stack
        .text(&format!("/hls/live/{id}/master.m3u8"))
        .await
        .expect("master playlist");
    let mut names: Vec<String> = master
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    names.extend(master.lines().filter_map(|l| {
        let uri = l.split("URI=\"").nth(1)?;
        Some(uri.split('"').next()?.to_owned())
    }));
    let mut out = Vec::new();
    for name in names {
        let playlist = stack
            .text(&format!("/hls/live/{id}/{name}"))
            .await
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(
            playlist.contains("#EXT-X-MEDIA-SEQUENCE:0\n"),
            "{name}: {playlist}"
        );
        assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{name}: {playlist}");
        let mut entries = Vec::new();
        let mut gap = false;
        for line in playlist.lines() {
            if line == "#EXT-X-GAP" {
                gap = true;
            } else if !line.is_empty() && !line.starts_with('#') {
                entries.push(Entry {
                    uri: line.to_owned(),
                    gap: std::mem::take(&mut gap),
                });
            }
        }
        let rendition = name.trim_end_matches("/index.m3u8").to_owned();
        out.push((rendition, entries));
    }
    out
}

/// The positions are 0..n in order (object `seg-{n:06}.m4s` at position n): no hole.
fn assert_whole(rendition: &str, entries: &[Entry]) {
    for (n, e) in entries.iter().enumerate() {
        assert_eq!(
            e.uri,
            format!("seg-{n:06}.m4s"),
            "{rendition}: position {n} of {entries:?}"
        );
    }
}

async fn stored(stack: &Stack, id: &str, rendition: &str, uri: &str) -> bool {
    stack
        .bytes(&format!("/hls/live/{id}/{rendition}/{uri}"))
        .await
        .is_some_and(|b| !b.is_empty())
}

/// A node whose S3 traffic goes through `bucket`; a publisher that drops ends the stream
/// two seconds later.
fn node_behind(stack: &Stack, bucket: &Counter, extra: &[(&str, &str)]) -> IngestNode {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", bucket.url.as_str()),
        ("RECONNECT_WINDOW_SECONDS", "2"),
    ];
    env.extend_from_slice(extra);
    IngestNode::start(stack, &env)
}

#[tokio::test]
async fn a_ten_second_bucket_outage_mid_stream_loses_no_segment_and_leaves_no_hole() {
    let stack = Stack::start();
    let bucket = Counter::start(&stack.moto);
    let node = node_behind(&stack, &bucket, &[]);
    let owner = User::named("owner");
    let (id, key) = owner
        .create_stream(
            &stack,
            json!({"channelId": "bucket-faults", "title": "S3 outage"}),
        )
        .await;
    let _publisher = RtmpPublisher::start(&node.rtmp, &key, "640x360", 30);
    wait_for_status(&stack, &id, "live", Duration::from_secs(60)).await;

    bucket.set_fault(Fault::Refuse);
    let outage = Instant::now();
    let mut peak_backlog = 0f64;
    while outage.elapsed() < Duration::from_secs(10) {
        peak_backlog =
            peak_backlog.max(metric(&node, "rill_ingest_upload_backlog_bytes", &id).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let failures = metric(&node, "rill_ingest_upload_failures_total", &id).await;
    bucket.set_fault(Fault::None);
    assert!(failures > 0.0, "the outage reached the node's uploads");
    assert!(
        peak_backlog > 100_000.0,
        "media waited in the backlog: {peak_backlog}"
    );

    wait_for_status(&stack, &id, "ended", Duration::from_secs(90)).await;
    let renditions = recording(&stack, &id).await;
    assert!(renditions.len() >= 2, "{renditions:?}");
    for (rendition, entries) in &renditions {
        assert_whole(rendition, entries);
        // 30 s published at 1 s segments; the first few go before `live`.
        assert!(entries.len() >= 20, "{rendition}: {} listed", entries.len());
        assert!(entries.iter().all(|e| !e.gap), "{rendition}: {entries:?}");
        for e in entries {
            assert!(
                stored(&stack, &id, rendition, &e.uri).await,
                "{rendition}/{} listed but not stored",
                e.uri
            );
        }
    }
    assert_eq!(
        metric(&node, "rill_ingest_gap_segments_total", &id).await,
        0.0
    );
}

#[tokio::test]
async fn an_outage_past_the_backlog_bound_drops_the_oldest_segments_as_gaps() {
    let stack = Stack::start();
    let bucket = Counter::start(&stack.moto);
    let node = node_behind(&stack, &bucket, &[("UPLOAD_BACKLOG_MB", "1")]);
    let owner = User::named("owner");
    let (id, key) = owner
        .create_stream(
            &stack,
            json!({"channelId": "bucket-faults", "title": "Long outage"}),
        )
        .await;
    let _publisher = RtmpPublisher::start(&node.rtmp, &key, "640x360", 40);
    wait_for_status(&stack, &id, "live", Duration::from_secs(60)).await;

    bucket.set_fault(Fault::Stall);
    let outage = Instant::now();
    let mut peak_backlog = 0f64;
    while outage.elapsed() < Duration::from_secs(20) {
        peak_backlog =
            peak_backlog.max(metric(&node, "rill_ingest_upload_backlog_bytes", &id).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bucket.set_fault(Fault::None);
    // The stalled attempt in flight ends at the node's S3 attempt timeout; then the backlog
    // drains. Only then is the number of dropped segments final.
    wait_for("the backlog to drain", Duration::from_secs(30), || async {
        metric(&node, "rill_ingest_upload_backlog_bytes", &id).await < 200_000.0
    })
    .await;
    let gaps = metric(&node, "rill_ingest_gap_segments_total", &id).await;
    assert!(gaps > 0.0, "20 s of media do not fit in 1 MB");
    assert!(
        peak_backlog <= f64::from(1u32 << 20),
        "the backlog kept its bound: {peak_backlog}"
    );

    wait_for_status(&stack, &id, "ended", Duration::from_secs(90)).await;
    let mut listed_gaps = 0;
    for (rendition, entries) in &recording(&stack, &id).await {
        assert_whole(rendition, entries);
        for e in entries {
            let present = stored(&stack, &id, rendition, &e.uri).await;
            // A gap is an object that was never stored; every other entry is.
            assert_eq!(present, !e.gap, "{rendition}/{} (gap: {})", e.uri, e.gap);
        }
        listed_gaps += entries.iter().filter(|e| e.gap).count();
    }
    assert_eq!(
        listed_gaps as f64, gaps,
        "each dropped segment is listed as a gap"
    );
}

/// Segments listed so far in `rendition`'s playlist.
async fn listed(stack: &Stack, id: &str, rendition: &str) -> usize {
    stack
        .text(&format!("/hls/live/{id}/{rendition}/index.m3u8"))
        .await
        .map_or(0, |p| p.matches("#EXTINF").count())
}

#[tokio::test]
async fn a_table_outage_does_not_hold_the_media_and_the_samples_catch_up() {
    let stack = Stack::start();
    let table = Counter::start(&dynamodb_url());
    let node = IngestNode::start(
        &stack,
        &[
            ("AWS_ENDPOINT_URL_DYNAMODB", table.url.as_str()),
            ("RECONNECT_WINDOW_SECONDS", "2"),
            ("SAMPLE_SECONDS", "1"),
        ],
    );
    let owner = User::named("owner");
    let (id, key) = owner
        .create_stream(
            &stack,
            json!({"channelId": "table-faults", "title": "Table outage"}),
        )
        .await;
    let _publisher = RtmpPublisher::start(&node.rtmp, &key, "640x360", 30);
    wait_for_status(&stack, &id, "live", Duration::from_secs(60)).await;

    let before = listed(&stack, &id, "audio").await;
    table.set_fault(Fault::Stall);
    let from = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = listed(&stack, &id, "audio").await;
    let to = chrono::Utc::now();
    table.set_fault(Fault::None);
    assert!(
        during >= before + 6,
        "segments kept coming during the outage: {before} -> {during}"
    );

    let path = format!(
        "/api/streams/{id}/metrics?from={}&to={}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    wait_for("the outage's samples", Duration::from_secs(30), || async {
        let r = owner.get(&stack, &path).await;
        r.body["items"]
            .as_array()
            .is_some_and(|items| items.len() >= 6)
    })
    .await;
    wait_for_status(&stack, &id, "ended", Duration::from_secs(90)).await;
}
