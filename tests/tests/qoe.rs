//! Playback reports on the real binaries: a viewer's `heartbeat` frames (startup time,
//! rebuffering, rendition switches, live latency, bandwidth, dropped frames, a fatal error)
//! land on its viewer session (`VIEWER#{connection}`) with counts added up, the latest
//! values kept, the first startup time kept, and absurd numbers clamped; a frame of the
//! wrong shape is refused with an error frame and changes nothing.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use rill_core::qoe;
use rill_tests::{Stack, User};
use serde_json::json;

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

#[tokio::test]
async fn heartbeats_add_up_on_the_viewer_session_within_bounds() {
    let stack = Stack::start();
    let owner = User::named("qoe-owner");
    let viewer = User::named("qoe-viewer");
    let id = stack
        .live_stream(&owner, "qoe", "Measured", json!({}))
        .await;
    let mut socket = stack.socket(&id, &viewer).await;

    socket
        .send_json(
            json!({"action": "heartbeat", "quality": "720p", "buffering": 400,
            "rebuffers": 1, "startupMs": 850, "switchesUp": 1, "latencyMs": 2100,
            "bandwidthKbps": 5400, "droppedFrames": 3, "started": true}),
        )
        .await;
    // A second report: a restart's startup time does not replace the first; an absurd
    // latency and dropped-frame count are clamped.
    socket
        .send_json(
            json!({"action": "heartbeat", "quality": "480p", "buffering": 600,
            "rebuffers": 2, "startupMs": 4000, "switchesDown": 1, "latencyMs": 86_400_000u64,
            "bandwidthKbps": 2100, "droppedFrames": 999_999_999u64,
            "fatalError": "fragLoadError"}),
        )
        .await;
    // Refused: a negative latency, an unknown field. Each gets an error frame only.
    for bad in [
        json!({"action": "heartbeat", "latencyMs": -1}),
        json!({"action": "heartbeat", "viewerId": "someone-else"}),
    ] {
        socket.send_json(bad).await;
        let e = socket.expect("error", Duration::from_secs(10)).await;
        assert_eq!(e["data"]["code"], "invalid_frame", "{e}");
    }

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let item = loop {
        if let Some(i) = stack.items_with_sk_prefix("VIEWER#").await.pop()
            && number(&i, "heartbeats") == Some(2)
        {
            break i;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two heartbeats were not stored"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(number(&item, "bufferingMs"), Some(1000));
    assert_eq!(number(&item, "rebuffers"), Some(3));
    assert_eq!(
        number(&item, "startupMs"),
        Some(850),
        "the first startup time"
    );
    assert_eq!(number(&item, "switchesUp"), Some(1));
    assert_eq!(number(&item, "switchesDown"), Some(1));
    assert_eq!(number(&item, "latencyMs"), Some(qoe::LATENCY_MS_MAX));
    assert_eq!(number(&item, "bandwidthKbps"), Some(2100), "the latest");
    assert_eq!(number(&item, "droppedFrames"), Some(3 + qoe::DROPPED_MAX));
    assert_eq!(
        item.get("quality")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("480p")
    );
    assert_eq!(
        item.get("fatalError")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("fragLoadError")
    );
    assert_eq!(item.get("started"), Some(&AttributeValue::Bool(true)));
    socket.close().await;
}
