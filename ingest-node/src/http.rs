//! The node's HTTP side: health, Prometheus metrics (and WHIP, mounted here too).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::get;

use crate::node::Node;

/// `/healthz` and `/metrics` (Prometheus text format, per-stream gauges and counters).
pub fn router(node: Node) -> Router {
    let faults = node.clone();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let node = node.clone();
                async move { metrics_text(&node) }
            }),
        );
    if !faults.config().fault_hooks {
        return router;
    }
    router.route(
        "/_fault/panic/{id}",
        axum::routing::post(
            move |axum::extract::Path(id): axum::extract::Path<String>| {
                let node = faults.clone();
                async move {
                    if node.inject_panic(&id) {
                        axum::http::StatusCode::ACCEPTED
                    } else {
                        axum::http::StatusCode::NOT_FOUND
                    }
                }
            },
        ),
    )
}

fn metrics_text(node: &Node) -> String {
    let active = node.active();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP rill_ingest_streams Streams with a pipeline on this node."
    );
    let _ = writeln!(out, "# TYPE rill_ingest_streams gauge");
    let _ = writeln!(out, "rill_ingest_streams {}", active.len());
    let series: [(&str, &str, &str); 11] = [
        (
            "rill_ingest_governor_level",
            "gauge",
            "Overload governor level: 0 = full quality, 5 = cheapest settings.",
        ),
        (
            "rill_ingest_shed_frames_total",
            "counter",
            "Decoded frames kept from the encoders at the governor's last level.",
        ),
        (
            "rill_ingest_publishing",
            "gauge",
            "1 while a publisher is connected.",
        ),
        (
            "rill_ingest_input_bytes_total",
            "counter",
            "Media bytes received from the publisher.",
        ),
        (
            "rill_ingest_input_frames_total",
            "counter",
            "Video frames received from the publisher.",
        ),
        (
            "rill_ingest_dropped_frames_total",
            "counter",
            "Packets the pipeline could not package.",
        ),
        (
            "rill_ingest_late_frames_total",
            "counter",
            "Video frames that arrived over 300 ms later than their timestamps allow.",
        ),
        (
            "rill_ingest_media_seconds",
            "gauge",
            "Media time transcoded (top rung).",
        ),
        (
            "rill_ingest_upload_backlog_bytes",
            "gauge",
            "Media waiting for the bucket (grows during an outage, bounded by UPLOAD_BACKLOG_MB).",
        ),
        (
            "rill_ingest_upload_failures_total",
            "counter",
            "Upload attempts that failed (each is retried, in order).",
        ),
        (
            "rill_ingest_gap_segments_total",
            "counter",
            "Segments dropped past the upload backlog and listed as #EXT-X-GAP.",
        ),
    ];
    for (name, kind, help) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (id, publishing, c) in &active {
            let v = match name {
                "rill_ingest_publishing" => u64::from(*publishing) as f64,
                "rill_ingest_input_bytes_total" => c.input_bytes.load(Ordering::Relaxed) as f64,
                "rill_ingest_input_frames_total" => c.input_frames.load(Ordering::Relaxed) as f64,
                "rill_ingest_dropped_frames_total" => {
                    c.dropped_frames.load(Ordering::Relaxed) as f64
                }
                "rill_ingest_late_frames_total" => c.late_frames.load(Ordering::Relaxed) as f64,
                "rill_ingest_governor_level" => c.governor_level.load(Ordering::Relaxed) as f64,
                "rill_ingest_shed_frames_total" => c.shed_frames.load(Ordering::Relaxed) as f64,
                "rill_ingest_upload_backlog_bytes" => {
                    c.upload_backlog_bytes.load(Ordering::Relaxed) as f64
                }
                "rill_ingest_upload_failures_total" => {
                    c.upload_failures.load(Ordering::Relaxed) as f64
                }
                "rill_ingest_gap_segments_total" => {
                    c.dropped_segments.load(Ordering::Relaxed) as f64
                }
                _ => c.media_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            };
            let _ = writeln!(out, "{name}{{stream_id=\"{id}\"}} {v}");
        }
    }
    let name = "rill_ingest_segment_availability_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Source media of a segment complete -> segment and playlist stored (last 600 segments, every rendition)."
    );
    let _ = writeln!(out, "# TYPE {name} summary");
    for (id, _, c) in &active {
        let lags = c
            .availability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for q in [0.5, 0.9, 0.99] {
            if let Some(v) = lags.quantile(q) {
                let _ = writeln!(
                    out,
                    "{name}{{stream_id=\"{id}\",quantile=\"{q}\"}} {:.4}",
                    v.as_secs_f64()
                );
            }
        }
        let _ = writeln!(
            out,
            "{name}_sum{{stream_id=\"{id}\"}} {:.4}",
            lags.sum.as_secs_f64()
        );
        let _ = writeln!(out, "{name}_count{{stream_id=\"{id}\"}} {}", lags.count);
    }
    out
}
