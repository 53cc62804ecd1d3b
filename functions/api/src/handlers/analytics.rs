//! Stream analytics over REST: the summary and per-minute series
//! (`rill_core::analytics::metrics`), as JSON or CSV, and the per-view rows.
//!
//! Reads per request: the minute buckets of the range (one query, paged), the bucket
//! before it (the carried viewer count), the ingest samples of the range, and for the
//! summary and `view=sessions` the views (`CONN#`, `SESSION#`, `VIEWER#`, one paged query
//! each). Owner and moderators only; others 403, unknown or hidden streams 404.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use lambda_http::{Body, Request, Response};
use rill_core::analytics::metrics::{self, Inputs, MinuteRow, SERIES_MINUTES_MAX, View};
use rill_core::stream::StreamStatus;
use rill_core::time::{self, Timestamp};
use serde_json::json;

use super::channels::{channel_param, role_in};
use super::metrics::instant;
use super::{ensure_moderator, load_stream};
use crate::request::{id_param, json, query_param};
use crate::{ApiError, App};

/// Ingest samples read per request, at most (a day of 5 s samples is 17,280: a longer
/// range shows the first ones).
const SAMPLES_MAX: u32 = 2_000;

fn choice<'a>(req: &Request, name: &str, allowed: &[&'a str]) -> Result<&'a str, ApiError> {
    match query_param(req, name) {
        None => Ok(allowed[0]),
        Some(v) => allowed.iter().copied().find(|a| *a == v).ok_or_else(|| {
            ApiError::InvalidQuery(format!("{name} must be one of {}", allowed.join(", ")))
        }),
    }
}

/// `GET /api/streams/{id}/analytics?from&to&format=json|csv&view=summary|sessions`.
///
/// The range defaults to the stream's life (start, or creation, to its end or now), is cut
/// to now and to [`SERIES_MINUTES_MAX`] minutes from `from`; `from` after `to` is an empty
/// range. `view=sessions` answers the per-view rows instead of the summary and series.
pub async fn stream(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let from = instant("from", query_param(&req, "from"))?;
    let to = instant("to", query_param(&req, "to"))?;
    let format = choice(&req, "format", &["json", "csv"])?;
    let view = choice(&req, "view", &["summary", "sessions"])?;
    let stream = load_stream(&app, &req, &id).await?;
    ensure_moderator(&app, &stream, &caller.user_id).await?;
    let now = time::now();
    let from = from.unwrap_or(stream.started_at.unwrap_or(stream.created_at));
    let to = to.or(stream.ended_at).unwrap_or(now).min(now).min(
        from.checked_add_signed(chrono::Duration::minutes(SERIES_MINUTES_MAX))
            .unwrap_or(now),
    );
    if view == "sessions" {
        let views: Vec<View> = app
            .analytics
            .views(&id, now)
            .await?
            .into_iter()
            .filter(|v| v.started_at <= to && v.ended_at.is_none_or(|e| e >= from))
            .collect();
        return if format == "csv" {
            csv(&id, "sessions", &sessions_csv(&views))
        } else {
            json(
                200,
                &json!({"items": views, "from": time::format(&from), "to": time::format(&to)}),
            )
        };
    }
    let (minutes, count_before, views, samples) = if from > to {
        (Vec::new(), 0, Vec::new(), Vec::new())
    } else {
        tokio::try_join!(
            app.analytics
                .minutes(&id, rill_core::analytics::minute_of(from), to),
            app.analytics
                .count_before(&id, rill_core::analytics::minute_of(from)),
            app.analytics.views(&id, now),
            app.metrics.samples(&id, from, to, SAMPLES_MAX),
        )?
    };
    let (summary, series) = metrics::compute(&Inputs {
        minutes: &minutes,
        count_before,
        views: Some(&views),
        samples: &samples,
        from,
        to: to.max(from),
        concurrent_now: if stream.status == StreamStatus::Live {
            stream.stats.current_viewers
        } else {
            0
        },
        // `VIEWER#` items live a day after their last report.
        reports_since: now - chrono::Duration::hours(24),
    });
    if format == "csv" {
        return csv(&id, "minutes", &minutes_csv(&series));
    }
    json(
        200,
        &json!({
            "streamId": id,
            "status": stream.status,
            "from": time::format(&from),
            "to": time::format(&to),
            "summary": summary,
            "series": series,
        }),
    )
}

/// Streams one channel answer covers, at most (the most recent ones in the range).
pub const CHANNEL_STREAMS_MAX: usize = 50;
/// The default range of a channel's analytics: the last 30 days.
const CHANNEL_DEFAULT_DAYS: i64 = 30;

/// `GET /api/channels/{channelId}/analytics?from&to`: every stream of the channel that was
/// live within the range (live ones, then ended ones, most recent first, at most
/// [`CHANNEL_STREAMS_MAX`]), one row each, and the totals. For the channel's owner and
/// moderators. Per stream: its minute buckets and its views (as the stream's own
/// analytics), fetched 8 streams at a time.
pub async fn channel(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = channel_param(&req)?;
    let caller = app.auth.require(&req).await?;
    let now = time::now();
    let to = instant("to", query_param(&req, "to"))?
        .unwrap_or(now)
        .min(now);
    let from = instant("from", query_param(&req, "from"))?
        .unwrap_or(to - chrono::Duration::days(CHANNEL_DEFAULT_DAYS));
    if !rill_core::channel::sees_members(role_in(&app, &id, &caller.user_id).await?) {
        return Err(ApiError::forbidden(
            "not_moderator",
            "only the channel's owner and moderators see its analytics",
        ));
    }
    let (streams, truncated) = channel_streams(&app, &id, from, to).await?;
    let rows: Vec<(rill_core::Stream, metrics::Summary, Vec<View>)> =
        futures_util::stream::iter(streams.into_iter().map(|stream| {
            let app = app.clone();
            async move {
                let start = stream.started_at.unwrap_or(stream.created_at).max(from);
                let end = stream.ended_at.unwrap_or(now).min(to);
                let (minutes, views) = tokio::try_join!(
                    app.analytics
                        .minutes(&stream.id, rill_core::analytics::minute_of(start), end),
                    app.analytics.views(&stream.id, now),
                )?;
                let (summary, _) = metrics::compute(&Inputs {
                    minutes: &minutes,
                    count_before: 0,
                    views: Some(&views),
                    samples: &[],
                    from: start,
                    to: end.max(start),
                    concurrent_now: 0,
                    reports_since: now - chrono::Duration::hours(24),
                });
                Ok::<_, ApiError>((stream, summary, views))
            }
        }))
        .buffered(8)
        .try_collect()
        .await?;
    let mut signed_in = std::collections::BTreeSet::new();
    let mut anonymous = 0u64;
    let (mut views, mut watch_ms, mut watched_views) = (0u64, 0u64, 0u64);
    let (mut viewer_minutes, mut peak, mut chat, mut reactions) = (0f64, 0u64, 0u64, 0u64);
    let mut items = Vec::new();
    for (stream, s, vs) in &rows {
        for v in vs {
            match &v.user_id {
                Some(u) => {
                    signed_in.insert(u.clone());
                }
                None => anonymous += 1,
            }
        }
        let stream_reactions: u64 = s.reactions.values().sum();
        views += s.views;
        if let Some(avg) = s.avg_watch_ms {
            watch_ms += avg * s.views;
            watched_views += s.views;
        }
        viewer_minutes += s.viewer_minutes;
        peak = peak.max(s.peak_viewers);
        chat += s.chat_messages;
        reactions += stream_reactions;
        items.push(json!({
            "streamId": stream.id, "title": stream.title, "status": stream.status,
            "startedAt": stream.started_at.as_ref().map(time::format),
            "endedAt": stream.ended_at.as_ref().map(time::format),
            "views": s.views, "uniqueViewers": s.unique_viewers, "peakViewers": s.peak_viewers,
            "viewerMinutes": s.viewer_minutes, "avgWatchMs": s.avg_watch_ms,
            "chatMessages": s.chat_messages, "reactions": stream_reactions,
            "startupP50Ms": s.startup_p50_ms, "rebufferPercent": s.rebuffer_percent,
        }));
    }
    json(
        200,
        &json!({
            "channelId": id,
            "from": time::format(&from),
            "to": time::format(&to),
            "totals": {
                "streams": items.len(), "views": views,
                "uniqueViewers": signed_in.len() as u64 + anonymous,
                "viewerMinutes": (viewer_minutes * 100.0).round() / 100.0,
                "peakViewers": peak, "chatMessages": chat, "reactions": reactions,
                "avgWatchMs": (watched_views > 0).then(|| watch_ms / watched_views),
            },
            "streams": items,
            "truncated": truncated,
        }),
    )
}

/// The channel's streams live within `[from, to]`: live ones first, then ended ones, most
/// recent first; `true` when more than [`CHANNEL_STREAMS_MAX`] were.
async fn channel_streams(
    app: &App,
    channel_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<(Vec<rill_core::Stream>, bool), ApiError> {
    use rill_core::store::{ListQuery, Listing};
    let mut out = Vec::new();
    for listing in [Listing::Live, Listing::Past] {
        let mut cursor = None;
        loop {
            let page = app
                .streams
                .list_streams(&ListQuery {
                    listing,
                    channel_id: Some(channel_id.to_owned()),
                    limit: 100,
                    cursor,
                    scope: rill_core::channel::ListScope {
                        all: true,
                        ..Default::default()
                    },
                })
                .await?;
            let mut older = false;
            for s in page.items {
                // Past streams come most recently ended first: one that ended before
                // `from` ends the walk.
                if s.ended_at.is_some_and(|e| e < from) {
                    older = true;
                    break;
                }
                if s.started_at.unwrap_or(s.created_at) <= to {
                    out.push(s);
                }
                if out.len() > CHANNEL_STREAMS_MAX {
                    out.truncate(CHANNEL_STREAMS_MAX);
                    return Ok((out, true));
                }
            }
            match page.next_cursor {
                Some(c) if !older => cursor = Some(c),
                _ => break,
            }
        }
    }
    Ok((out, false))
}

/// A CSV answer, downloaded as `stream-{id}-{what}.csv`.
fn csv(id: &str, what: &str, body: &str) -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(200)
        .header("content-type", "text/csv; charset=utf-8")
        .header(
            "content-disposition",
            format!("attachment; filename=\"stream-{id}-{what}.csv\""),
        )
        .body(Body::Text(body.to_owned()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// One CSV field: quoted when it holds a separator, a quote or a line break; text that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is prefixed with `'`.
fn field(raw: &str) -> String {
    let safe = if raw.starts_with(['=', '+', '-', '@']) && raw.parse::<f64>().is_err() {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if safe.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn line(out: &mut String, cells: &[String]) {
    let row: Vec<String> = cells.iter().map(|c| field(c)).collect();
    out.push_str(&row.join(","));
    out.push_str("\r\n");
}

/// The per-minute series as CSV (RFC 4180: CRLF, a header row).
fn minutes_csv(rows: &[MinuteRow]) -> String {
    let mut out = String::new();
    let header = [
        "minute",
        "viewers_max",
        "viewers_avg",
        "viewer_seconds",
        "views_started",
        "views_ended",
        "playback_starts",
        "failures",
        "startup_p50_ms",
        "rebuffer_percent",
        "rebuffers",
        "switches_up",
        "switches_down",
        "latency_p50_ms",
        "latency_p95_ms",
        "chat_messages",
        "chatters",
        "reactions",
        "ingest_kbps",
        "ingest_fps",
        "ingest_dropped_frames",
        "ingest_late_frames",
        "encoder_speed_min",
        "governor_level_max",
        "health_min",
        "cause",
        "cause_detail",
    ];
    line(&mut out, &header.map(str::to_owned));
    for r in rows {
        let i = r.ingest.as_ref();
        line(
            &mut out,
            &[
                time::format(&r.minute),
                r.viewers_max.to_string(),
                r.viewers_avg.to_string(),
                r.viewer_seconds.to_string(),
                r.views_started.to_string(),
                r.views_ended.to_string(),
                r.playback_starts.to_string(),
                r.failures.to_string(),
                opt(r.startup_p50_ms),
                opt(r.rebuffer_percent),
                r.rebuffers.to_string(),
                r.switches_up.to_string(),
                r.switches_down.to_string(),
                opt(r.latency_p50_ms),
                opt(r.latency_p95_ms),
                r.chat_messages.to_string(),
                r.chatters.to_string(),
                r.reactions.to_string(),
                opt(i.map(|i| i.input_kbps)),
                opt(i.map(|i| i.fps)),
                opt(i.map(|i| i.dropped_frames)),
                opt(i.map(|i| i.late_frames)),
                opt(i.map(|i| i.encoder_speed_min)),
                opt(i.map(|i| i.governor_level_max)),
                opt(i.map(|i| i.health_min)),
                opt(r.cause.as_ref().map(|c| c.kind.as_str())),
                opt(r.cause.as_ref().map(|c| c.detail.clone())),
            ],
        );
    }
    out
}

/// The per-view rows as CSV.
fn sessions_csv(views: &[View]) -> String {
    let mut out = String::new();
    let header = [
        "view_id",
        "user_id",
        "started_at",
        "ended_at",
        "watch_ms",
        "started",
        "startup_ms",
        "rebuffer_ms",
        "rebuffers",
        "switches_up",
        "switches_down",
        "dropped_frames",
        "rendition",
        "latency_ms",
        "bandwidth_kbps",
        "fatal_error",
    ];
    line(&mut out, &header.map(str::to_owned));
    for v in views {
        let r = v.report.as_ref();
        line(
            &mut out,
            &[
                v.view_id.clone(),
                v.user_id.clone().unwrap_or_default(),
                time::format(&v.started_at),
                opt(v.ended_at.as_ref().map(time::format)),
                v.watch_ms.to_string(),
                opt(r.map(|r| r.started)),
                opt(r.and_then(|r| r.startup_ms)),
                opt(r.map(|r| r.rebuffer_ms)),
                opt(r.map(|r| r.rebuffers)),
                opt(r.map(|r| r.switches_up)),
                opt(r.map(|r| r.switches_down)),
                opt(r.map(|r| r.dropped_frames)),
                opt(r.and_then(|r| r.rendition.clone())),
                opt(r.and_then(|r| r.latency_ms)),
                opt(r.and_then(|r| r.bandwidth_kbps)),
                opt(r.and_then(|r| r.fatal_error.clone())),
            ],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("720p"), "720p");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-3.5"), "-3.5");
        assert_eq!(field("@cmd"), "'@cmd");
    }

    #[test]
    fn the_sessions_csv_has_a_header_and_one_row_per_view() {
        let at = time::parse("2026-12-07T21:00:00.000Z").expect("time");
        let views = vec![View {
            view_id: "c1".into(),
            user_id: None,
            started_at: at,
            ended_at: None,
            watch_ms: 5_000,
            report: None,
        }];
        let csv = sessions_csv(&views);
        let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("view_id,user_id,started_at"));
        assert_eq!(lines[1], "c1,,2026-12-07T21:00:00.000Z,,5000,,,,,,,,,,,");
    }
}
