use super::*;
use chrono::{TimeZone, Utc};

/// 2026-01-01T12:00:00Z plus `offset` ms.
fn t(offset: i64) -> Timestamp {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    base + chrono::Duration::milliseconds(offset)
}

/// The bucket of minute `index` of the range (minute 0 starts at `t(0)`).
fn bucket(index: i64) -> Minute {
    Minute {
        start: t(index * MINUTE_MS),
        ..Minute::default()
    }
}

/// A bucket with viewer counts set at these seconds.
fn counts(index: i64, at_seconds: &[(u8, u64)]) -> Minute {
    let mut m = bucket(index);
    m.viewer_counts = at_seconds.iter().copied().collect();
    m
}

/// `views`: the per-view rows read, if any (`&[]`: none read).
fn inputs<'a>(
    minutes: &'a [Minute],
    views: &'a [View],
    before: u64,
    from: i64,
    to: i64,
) -> Inputs<'a> {
    Inputs {
        minutes,
        count_before: before,
        views: (!views.is_empty()).then_some(views),
        samples: &[],
        from: t(from),
        to: t(to),
        concurrent_now: 0,
        reports_since: t(0),
    }
}

/// A view started at `t(1_000)`.
fn view(user: Option<&str>, ended: Option<i64>, watch_ms: u64, report: Option<ViewReport>) -> View {
    View {
        view_id: format!("v{watch_ms}"),
        user_id: user.map(str::to_owned),
        started_at: t(1_000),
        ended_at: ended.map(t),
        watch_ms,
        report,
    }
}

/// A kept report: playback started or not, with a fatal error or not.
fn kept(started: bool, fatal: bool) -> Option<ViewReport> {
    let fatal_error = fatal.then(|| "manifestLoadError".to_owned());
    Some(ViewReport {
        started,
        fatal_error,
        ..ViewReport::default()
    })
}

fn sample(at: i64) -> QualitySample {
    QualitySample {
        stream_id: "s".into(),
        at: t(at),
        input_kbps: 3_000.0,
        fps: 30.0,
        width: 1280,
        height: 720,
        frames: 0,
        dropped_frames: 0,
        late_frames: 0,
        encoder_speed: 1.0,
        rtt_ms: None,
        packet_loss: None,
        health: 100,
        viewers: 0,
        protocol: "rtmp".into(),
        governor_level: 0,
        shed_frames: 0,
    }
}

/// The ingest column of a series of three minutes.
fn ingest_of(samples: &[QualitySample]) -> Vec<Option<IngestMinute>> {
    let input = Inputs {
        samples,
        ..inputs(&[], &[], 0, 0, 150_000)
    };
    compute(&input).1.into_iter().map(|r| r.ingest).collect()
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn viewers(row: &MinuteRow) -> (u64, f64, u64) {
    (row.viewers_max, row.viewers_avg, row.viewer_seconds)
}

#[test]
fn a_carried_count_and_changes_inside_a_minute_are_weighted_by_time() {
    // 4 viewers for 15 s, 10 for 30 s, 6 for 15 s: 450 viewer-seconds over 60 s.
    let minutes = [counts(0, &[(15, 10), (45, 6)])];
    let (summary, rows) = compute(&inputs(&minutes, &[], 4, 0, 60_000));
    assert_eq!(rows[0].minute, t(0));
    assert_eq!(viewers(&rows[0]), (10, 7.5, 450));
    assert_eq!(summary.viewer_minutes, 7.5);
}

#[test]
fn the_peak_is_the_highest_count_and_when_it_was_first_set() {
    let minutes = [
        counts(0, &[(20, 8), (40, 5)]),
        counts(1, &[(10, 8), (30, 2)]),
    ];
    let (summary, rows) = compute(&inputs(&minutes, &[], 3, 0, 120_000));
    assert_eq!(summary.peak_viewers, 8);
    assert_eq!(summary.peak_at, Some(t(20_000)));
    assert_eq!((rows[0].viewers_max, rows[1].viewers_max), (8, 8));
}

#[test]
fn a_carried_count_never_exceeded_peaks_at_the_start_of_the_range() {
    let minutes = [counts(0, &[(30, 5)])];
    let (summary, rows) = compute(&inputs(&minutes, &[], 12, 0, 60_000));
    assert_eq!(summary.peak_viewers, 12);
    assert_eq!(summary.peak_at, Some(t(0)));
    // 12 for 30 s, 5 for 30 s.
    assert_eq!(viewers(&rows[0]), (12, 8.5, 510));
}

#[test]
fn without_viewers_there_is_no_peak_time() {
    let (summary, rows) = compute(&inputs(&[], &[], 0, 0, 60_000));
    assert_eq!((summary.peak_viewers, summary.peak_at), (0, None));
    assert_eq!(
        (summary.viewer_minutes, viewers(&rows[0])),
        (0.0, (0, 0.0, 0))
    );
}

#[test]
fn minutes_without_a_bucket_carry_the_last_count() {
    let minutes = [counts(3, &[(0, 2)]), counts(0, &[(30, 6)])];
    let (summary, rows) = compute(&inputs(&minutes, &[], 0, 0, 240_000));
    assert_eq!(viewers(&rows[0]), (6, 3.0, 180));
    assert_eq!(viewers(&rows[1]), (6, 6.0, 360));
    assert_eq!(viewers(&rows[2]), (6, 6.0, 360));
    // The 6 carried into minute 3 is its maximum, though 2 was set at its first second.
    assert_eq!(viewers(&rows[3]), (6, 2.0, 120));
    assert_eq!(rows[2].minute, t(120_000));
    assert_eq!(summary.viewer_minutes, 17.0);
}

#[test]
fn the_series_is_capped_at_a_day_of_minutes() {
    let (summary, rows) = compute(&inputs(&[], &[], 1, 0, 3 * 24 * 60 * MINUTE_MS));
    assert_eq!(rows.len(), 1440);
    assert_eq!(rows[1439].minute, t(1439 * MINUTE_MS));
    assert_eq!(summary.viewer_minutes, 1440.0);
}

#[test]
fn a_partial_last_minute_averages_over_its_elapsed_part_only() {
    // Minute 1 ends at 30 s: 2 viewers for 10 s, then 4 for 20 s.
    let minutes = [counts(1, &[(10, 4)])];
    let (summary, rows) = compute(&inputs(&minutes, &[], 2, 0, 90_000));
    assert_eq!(rows.len(), 2);
    assert_eq!(viewers(&rows[0]), (2, 2.0, 120));
    assert_eq!(viewers(&rows[1]), (4, 3.33, 100));
    // 220 viewer-seconds.
    assert_eq!(summary.viewer_minutes, 3.67);
}

#[test]
fn a_range_starting_mid_minute_starts_the_series_at_that_minute() {
    let (_, rows) = compute(&inputs(&[], &[], 0, 30_000, 150_000));
    let starts: Vec<Timestamp> = rows.iter().map(|r| r.minute).collect();
    assert_eq!(starts, vec![t(0), t(60_000), t(120_000)]);
}

#[test]
fn a_range_ending_on_a_minute_boundary_has_no_row_for_the_minute_it_ends_at() {
    // [12:00, 12:02) is two minutes; a day from midnight is SERIES_MINUTES_MAX of them.
    let (_, rows) = compute(&inputs(&[], &[], 5, 0, 120_000));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.viewers_avg == 5.0));
}

#[test]
fn views_count_signed_in_users_once_and_each_anonymous_view() {
    let views = [
        view(Some("a"), Some(60_000), 60_000, kept(true, false)),
        view(Some("a"), Some(70_000), 30_000, kept(true, false)),
        view(None, Some(80_000), 10_000, kept(false, false)),
        view(None, Some(90_000), 5_000, kept(false, true)),
        view(Some("b"), None, 120_000, kept(true, false)),
        view(None, Some(2_000), 0, None),
        // Outside the range: ended before it, started after it.
        view(Some("c"), Some(-1), 7_000, kept(true, false)),
        View {
            started_at: t(600_001),
            ..view(Some("d"), None, 8_000, kept(true, false))
        },
    ];
    let s = compute(&inputs(&[], &views, 0, 0, 600_000)).0;
    assert_eq!(s.views, 6);
    assert_eq!(s.unique_viewers, 5);
    // 225,000 ms over 6 views; the middle two of 0, 5k, 10k, 30k, 60k, 120k.
    assert_eq!(s.avg_watch_ms, Some(37_500));
    assert_eq!(s.median_watch_ms, Some(20_000));
    // Ended, never played, no error: the 10 s view and the one without a report.
    assert_eq!(s.exits_before_start_percent, Some(33.33));
    assert_eq!(s.playback_failure_percent, Some(16.67));
}

#[test]
fn the_median_watch_time_of_an_odd_number_of_views_is_the_middle_one() {
    let views = [
        view(None, Some(10_000), 1_000, kept(true, false)),
        view(None, Some(10_000), 9_000, kept(true, false)),
        view(None, Some(10_000), 2_000, kept(true, false)),
    ];
    let s = compute(&inputs(&[], &views, 0, 0, 60_000)).0;
    assert_eq!(s.avg_watch_ms, Some(4_000));
    assert_eq!(s.median_watch_ms, Some(2_000));
    assert_eq!(s.exits_before_start_percent, Some(0.0));
    assert_eq!(s.playback_failure_percent, Some(0.0));
}

#[test]
fn an_open_view_without_a_report_makes_exits_and_failures_unknown() {
    let views = [
        view(Some("a"), Some(30_000), 29_000, kept(false, true)),
        view(None, None, 50_000, None),
    ];
    let s = compute(&inputs(&[], &views, 0, 0, 60_000)).0;
    assert_eq!((s.views, s.unique_viewers), (2, 2));
    assert_eq!(s.exits_before_start_percent, None);
    assert_eq!(s.playback_failure_percent, None);
}

#[test]
fn without_views_the_summary_counts_the_buckets_views() {
    let (mut a, mut b) = (bucket(0), bucket(1));
    (a.views_started, a.views_ended, a.ended_watch_ms, a.failures) = (3, 1, 20_000, 1);
    (b.views_started, b.views_ended, b.ended_watch_ms) = (1, 1, 30_000);
    let minutes = [a, b];
    let outside = [view(None, Some(-5), 1_000, kept(true, false))];
    for views in [&[][..], &outside[..]] {
        let (s, rows) = compute(&inputs(&minutes, views, 0, 0, 120_000));
        assert_eq!((s.views, s.unique_viewers), (4, 4));
        assert_eq!((s.avg_watch_ms, s.median_watch_ms), (Some(25_000), None));
        assert_eq!(s.exits_before_start_percent, None);
        assert_eq!(s.playback_failure_percent, Some(25.0));
        assert_eq!((rows[0].views_started, rows[0].views_ended), (3, 1));
    }
    let mut none_ended = bucket(0);
    none_ended.views_started = 2;
    let (s, _) = compute(&inputs(&[none_ended], &[], 0, 0, 60_000));
    assert_eq!((s.views, s.avg_watch_ms), (2, None));
    assert_eq!(s.playback_failure_percent, Some(0.0));
}

#[test]
fn rebuffering_is_a_percentage_of_reported_watch_time_rounded_to_two_decimals() {
    let (mut a, mut b) = (bucket(0), bucket(1));
    (a.watched_ms, a.rebuffer_ms) = (120_000, 1_000);
    (b.watched_ms, b.rebuffer_ms) = (60_000, 1_000);
    let minutes = [a, b];
    let (s, rows) = compute(&inputs(&minutes, &[], 0, 0, 179_999));
    // 2 s of 3 min, 1 s of 2 min, 1 s of 1 min; nothing reported in minute 2.
    assert_eq!(s.rebuffer_percent, Some(1.11));
    assert_eq!(rows[0].rebuffer_percent, Some(0.83));
    assert_eq!(rows[1].rebuffer_percent, Some(1.67));
    assert_eq!(rows[2].rebuffer_percent, None);
}

#[test]
fn rebuffers_and_switches_are_per_minute_of_reported_watch_time() {
    let mut m = bucket(0);
    (m.watched_ms, m.rebuffers, m.switches_up, m.switches_down) = (240_000, 6, 3, 1);
    let (s, rows) = compute(&inputs(&[m], &[], 0, 0, 60_000));
    assert_eq!(s.rebuffers_per_minute, Some(1.5));
    assert_eq!(s.switches_up_per_viewer_minute, Some(0.75));
    assert_eq!(s.switches_down_per_viewer_minute, Some(0.25));
    let r = &rows[0];
    assert_eq!((r.rebuffers, r.switches_up, r.switches_down), (6, 3, 1));

    let mut unwatched = bucket(0);
    (unwatched.rebuffers, unwatched.switches_up) = (2, 1);
    let (s, _) = compute(&inputs(&[unwatched], &[], 0, 0, 60_000));
    assert_eq!(s.rebuffers_per_minute, None);
    assert_eq!(s.switches_up_per_viewer_minute, None);
    assert_eq!(s.rebuffer_percent, None);
}

#[test]
fn rendition_time_is_a_share_of_all_rendition_time() {
    let (mut a, mut b) = (bucket(0), bucket(1));
    a.rendition_ms = [(s("720p"), 60_000), (s("1080p"), 30_000)].into();
    b.rendition_ms = [(s("720p"), 30_000), (s("480p"), 60_000)].into();
    let (summary, _) = compute(&inputs(&[a, b], &[], 0, 0, 120_000));
    let expected = [(s("1080p"), 16.67), (s("480p"), 33.33), (s("720p"), 50.0)];
    assert_eq!(summary.rendition_percent, expected.into());
}

#[test]
fn chatted_percent_is_unique_chatters_over_unique_viewers() {
    let (mut a, mut b) = (bucket(0), bucket(1));
    (a.chat_messages, a.chatters) = (5, [s("a"), s("b")].into());
    (b.chat_messages, b.chatters) = (1, [s("a")].into());
    let minutes = [a, b];
    let users = [Some("a"), Some("b"), Some("c"), None, None, None];
    let views: Vec<View> = (0..)
        .zip(users)
        .map(|(watch, user)| view(user, None, watch, kept(true, false)))
        .collect();
    let (s, rows) = compute(&inputs(&minutes, &views, 0, 0, 119_999));
    assert_eq!((s.chat_messages, s.chatters, s.unique_viewers), (6, 2, 6));
    assert_eq!(s.chatted_percent, Some(33.33));
    // Six messages over a two-minute series.
    assert_eq!(s.chat_messages_per_minute, 3.0);
    assert_eq!((rows[0].chat_messages, rows[0].chatters), (5, 2));
    assert_eq!((rows[1].chat_messages, rows[1].chatters), (1, 1));
}

#[test]
fn reactions_are_counted_per_hundred_viewer_minutes_by_emoji() {
    let emoji = s;
    let (mut a, mut b) = (bucket(0), bucket(1));
    a.reactions = [(emoji("👍"), 3), (emoji("🎉"), 1)].into();
    b.reactions = [(emoji("👍"), 2)].into();
    let minutes = [a, b];
    // 5 viewers for two minutes: 10 viewer-minutes.
    let (s, rows) = compute(&inputs(&minutes, &[], 5, 0, 120_000));
    assert_eq!(s.viewer_minutes, 10.0);
    assert_eq!(s.reactions, [(emoji("🎉"), 1), (emoji("👍"), 5)].into());
    let rate: BTreeMap<String, f64> = [(emoji("🎉"), 10.0), (emoji("👍"), 50.0)].into();
    assert_eq!(s.reactions_per_100_viewer_minutes, rate);
    assert_eq!((rows[0].reactions, rows[1].reactions), (4, 2));

    let (s, _) = compute(&inputs(&minutes, &[], 0, 0, 120_000));
    assert_eq!(s.reactions.len(), 2);
    assert!(s.reactions_per_100_viewer_minutes.is_empty());
}

#[test]
fn latency_and_startup_percentiles_come_from_the_merged_histograms() {
    let mut a = bucket(0);
    a.latency.add_count(LATENCY_BINS_MS, 1, 2);
    let mut b = bucket(1);
    b.latency.add_count(LATENCY_BINS_MS, 2, 2);
    b.startup.add(STARTUP_BINS_MS, 40_000);
    let (s, rows) = compute(&inputs(&[a, b], &[], 0, 0, 120_000));
    // Two values in (1000, 2000], two in (2000, 3000].
    assert_eq!(s.latency_p50_ms, Some(2_000));
    assert_eq!(s.latency_p95_ms, Some(2_900));
    assert_eq!(rows[0].latency_p50_ms, Some(1_500));
    assert_eq!(rows[0].latency_p95_ms, Some(1_950));
    assert_eq!(rows[0].startup_p50_ms, None);
    assert_eq!(rows[1].startup_p50_ms, Some(20_000));
    assert_eq!(
        (s.startup_p50_ms, s.startup_p95_ms),
        (Some(20_000), Some(20_000))
    );
    assert_eq!(s.startup_histogram.len(), 9);
    let last = &s.startup_histogram[8];
    assert_eq!((last.up_to, last.count), (None, 1));
    let third = &s.latency_histogram[2];
    assert_eq!((third.up_to, third.count), (Some(3_000), 2));
}

#[test]
fn an_ingest_minute_averages_its_samples_and_keeps_the_worst() {
    // at, kbit/s, fps, dropped, late, encoder speed, governor level, health
    let samples: Vec<QualitySample> = [
        (0, 3_000.0, 30.0, 100, 5, 1.2, 0, 98),
        (5_000, 3_100.0, 29.0, 110, 5, 0.95, 2, 80),
        (59_999, 3_300.0, 28.0, 125, 8, 1.1, 1, 90),
    ]
    .into_iter()
    .map(|(at, kbps, fps, dropped, late, speed, level, health)| {
        let mut s = sample(at);
        (s.input_kbps, s.fps, s.dropped_frames, s.late_frames) = (kbps, fps, dropped, late);
        (s.encoder_speed, s.governor_level, s.health) = (speed, level, health);
        s
    })
    .collect();
    let expected = IngestMinute {
        samples: 3,
        input_kbps: 3_133.33,
        fps: 29.0,
        dropped_frames: 25,
        late_frames: 3,
        encoder_speed_min: 0.95,
        governor_level_max: 2,
        health_min: 80,
    };
    assert_eq!(ingest_of(&samples), vec![Some(expected), None, None]);
}

#[test]
fn a_counter_reset_counts_the_new_value_from_zero() {
    let samples: Vec<QualitySample> = [(0, 100), (5_000, 140), (10_000, 10), (15_000, 30)]
        .into_iter()
        .map(|(at, dropped)| {
            let mut s = sample(60_000 + at);
            (s.dropped_frames, s.late_frames) = (dropped, dropped / 10);
            s
        })
        .collect();
    let ingest = ingest_of(&samples);
    assert_eq!(ingest[0], None);
    let minute = ingest[1].as_ref().unwrap();
    // 40, then 10 from zero, then 20.
    assert_eq!(minute.dropped_frames, 70);
    // 10, 14, 1, 3: 4, then 1 from zero, then 2.
    assert_eq!(minute.late_frames, 7);
}

#[test]
fn a_minute_with_one_sample_counts_what_grew_since_the_previous_sample() {
    // Frames dropped between the last sample of one minute and the first of the next
    // count in the later minute, once; the range's first sample is the baseline.
    let mut first = sample(50_000);
    (first.dropped_frames, first.late_frames) = (10, 2);
    let mut next = sample(120_000);
    (next.dropped_frames, next.late_frames) = (22, 5);
    let ingest = ingest_of(&[first, next]);
    let (a, c) = (ingest[0].clone().unwrap(), ingest[2].clone().unwrap());
    assert_eq!((a.dropped_frames, a.late_frames), (0, 0));
    assert_eq!(c.samples, 1);
    assert_eq!((c.dropped_frames, c.late_frames), (12, 3));
}

#[test]
fn exits_and_failures_are_unknown_once_an_ended_views_report_may_have_expired() {
    let views = [view(None, Some(30_000), 29_000, None)];
    let kept_then = Inputs {
        reports_since: t(0),
        ..inputs(&[], &views, 0, 0, 60_000)
    };
    assert_eq!(
        compute(&kept_then).0.exits_before_start_percent,
        Some(100.0)
    );
    let expired = Inputs {
        reports_since: t(40_000),
        ..inputs(&[], &views, 0, 0, 60_000)
    };
    let summary = compute(&expired).0;
    assert_eq!(summary.exits_before_start_percent, None);
    assert_eq!(summary.playback_failure_percent, None);
}
