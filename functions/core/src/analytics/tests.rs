use super::*;
use chrono::{DateTime, TimeZone, Utc};

/// 2026-01-01T12:00:00Z plus `offset` ms.
fn t(offset: i64) -> Timestamp {
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    base + chrono::Duration::milliseconds(offset)
}

fn fact(stream: &str, offset: i64, kind: FactKind) -> Fact {
    Fact {
        stream_id: stream.into(),
        at: t(offset),
        kind,
    }
}

fn report(watched_ms: u64, rebuffer_ms: u64, rendition: Option<&str>) -> FactKind {
    FactKind::Report(ReportDelta {
        watched_ms,
        rebuffer_ms,
        rendition: rendition.map(str::to_owned),
        ..ReportDelta::default()
    })
}

fn started(country: Option<&str>, browser: &str, os: &str, device: &str) -> FactKind {
    let client = ClientKind {
        browser: browser.into(),
        os: os.into(),
        device: device.into(),
    };
    let country = country.map(str::to_owned);
    FactKind::ViewStarted { country, client }
}

fn chat(user: &str) -> FactKind {
    FactKind::Chat {
        user_id: user.into(),
    }
}

fn reaction(emoji: &str) -> FactKind {
    FactKind::Reaction {
        emoji: emoji.into(),
    }
}

/// A label → count map.
fn tally(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// The one bucket that facts of stream `s` at these offsets (all in the minute at `t(0)`)
/// fold into.
fn one_minute(kinds: Vec<(i64, FactKind)>) -> Minute {
    let out = fold(kinds.into_iter().map(|(at, k)| fact("s", at, k)));
    assert_eq!(out.len(), 1);
    out.into_values().next().unwrap()
}

#[test]
fn a_minute_runs_from_its_start_to_its_last_millisecond() {
    assert_eq!(minute_of(t(0)), t(0));
    assert_eq!(minute_of(t(59_999)), t(0));
    assert_eq!(minute_of(t(60_000)), t(60_000));
    assert_eq!(minute_of(t(60_001)), t(60_000));
}

#[test]
fn a_time_before_1970_rounds_down_to_its_minute_not_toward_zero() {
    let at = |ms| DateTime::from_timestamp_millis(ms).unwrap();
    assert_eq!(minute_of(at(-1)), at(-60_000));
    assert_eq!(minute_of(at(-60_000)), at(-60_000));
    assert_eq!(minute_of(at(-60_001)), at(-120_000));
    assert_eq!(minute_of(at(0)), at(0));
}

#[test]
fn outer_whitespace_and_control_characters_are_removed_from_a_label() {
    assert_eq!(label("  Firefox \t"), "Firefox");
    assert_eq!(label("72\u{0}0p\u{1b}"), "720p");
    assert_eq!(label("a\nb\u{7f}c"), "abc");
}

#[test]
fn a_label_is_cut_to_label_max_characters_not_bytes() {
    assert_eq!(label(&"x".repeat(LABEL_MAX)), "x".repeat(32));
    assert_eq!(label(&"x".repeat(LABEL_MAX + 1)), "x".repeat(32));
    assert_eq!(label(&"é".repeat(40)), "é".repeat(32));
}

#[test]
fn an_empty_or_control_only_label_is_unknown() {
    assert_eq!(label(""), "unknown");
    assert_eq!(label("   "), "unknown");
    assert_eq!(label("\u{0}\u{7}\u{1b}"), "unknown");
}

#[test]
fn a_label_is_trimmed_after_its_control_characters_are_removed() {
    // "trimmed, without control characters": the label itself has no outer spaces.
    assert_eq!(label("\u{7} 720p \u{7}"), "720p");
    assert_eq!(label("\u{1} \u{1}"), "unknown");
}

#[test]
fn a_two_letter_country_code_is_upper_cased() {
    assert_eq!(country(Some("se")), "SE");
    assert_eq!(country(Some("Fr")), "FR");
    assert_eq!(country(Some(" us ")), "US");
    assert_eq!(country(Some("DE")), "DE");
}

#[test]
fn a_missing_country_or_anything_but_two_ascii_letters_is_unknown() {
    assert_eq!(country(None), "unknown");
    for junk in ["", "D", "DEU", "D1", "--", "é", "ü", "X\u{0}"] {
        assert_eq!(country(Some(junk)), "unknown", "{junk:?}");
    }
}

#[test]
fn a_value_on_a_bound_falls_in_that_bounds_bin() {
    assert_eq!(Histogram::bin(STARTUP_BINS_MS, 0), 0);
    assert_eq!(Histogram::bin(STARTUP_BINS_MS, 250), 0);
    assert_eq!(Histogram::bin(STARTUP_BINS_MS, 251), 1);
    assert_eq!(Histogram::bin(STARTUP_BINS_MS, 500), 1);
    assert_eq!(Histogram::bin(STARTUP_BINS_MS, 20_000), 7);
    assert_eq!(Histogram::bin(STARTUP_BINS_MS, 20_001), 8);
    assert_eq!(Histogram::bin(LATENCY_BINS_MS, 30_001), 9);
}

#[test]
fn adding_a_value_sizes_the_counts_to_one_more_than_the_bounds() {
    let mut h = Histogram::default();
    h.add(STARTUP_BINS_MS, 300);
    assert_eq!(h.counts, vec![0, 1, 0, 0, 0, 0, 0, 0, 0]);
    h.add(STARTUP_BINS_MS, 1_000_000);
    h.add(STARTUP_BINS_MS, 400);
    assert_eq!(h.counts, vec![0, 2, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(h.total(), 3);
}

#[test]
fn merging_histograms_adds_their_counts_bin_by_bin() {
    let mut a = Histogram::default();
    a.add(STARTUP_BINS_MS, 100);
    a.add(STARTUP_BINS_MS, 300);
    let mut b = Histogram::default();
    b.add(STARTUP_BINS_MS, 300);
    b.add(STARTUP_BINS_MS, 50_000);
    a.merge(&b);
    assert_eq!(a.counts, vec![1, 2, 0, 0, 0, 0, 0, 0, 1]);

    let mut empty = Histogram::default();
    empty.merge(&b);
    assert_eq!(empty, b);
}

#[test]
fn a_quantile_is_interpolated_inside_its_bin() {
    // Four values in (500, 1000]: spread evenly, each a quarter of the bin.
    let mut h = Histogram::default();
    h.add_count(STARTUP_BINS_MS, 2, 4);
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.25), Some(625));
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.5), Some(750));
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.75), Some(875));
    assert_eq!(h.quantile(STARTUP_BINS_MS, 1.0), Some(1000));
    // The rank is at least one value.
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.0), Some(625));
    // One more value, in [0, 250]: of five, the 60th percentile is rank 3, the second of
    // the four; the 20th is rank 1, all of the first bin.
    h.add(STARTUP_BINS_MS, 100);
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.6), Some(750));
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.2), Some(250));
}

#[test]
fn the_first_bin_of_a_histogram_starts_at_zero() {
    let mut h = Histogram::default();
    h.add_count(STARTUP_BINS_MS, 0, 2);
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.5), Some(125));
}

#[test]
fn a_quantile_in_the_open_last_bin_is_its_lower_bound() {
    let mut h = Histogram::default();
    h.add(STARTUP_BINS_MS, 25_000);
    h.add(STARTUP_BINS_MS, 99_999);
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.5), Some(20_000));
    assert_eq!(h.quantile(STARTUP_BINS_MS, 0.95), Some(20_000));
}

#[test]
fn an_empty_histogram_has_no_quantile() {
    assert_eq!(Histogram::default().quantile(STARTUP_BINS_MS, 0.5), None);
    let mut zeros = Histogram::default();
    zeros.add_count(STARTUP_BINS_MS, 3, 0);
    assert_eq!(zeros.counts.len(), 9);
    assert_eq!(zeros.quantile(STARTUP_BINS_MS, 0.5), None);
}

#[test]
fn facts_of_two_streams_and_two_minutes_go_to_separate_buckets() {
    let out = fold([
        fact("b", 2_000, reaction("👍")),
        fact("a", 61_000, chat("u1")),
        fact("a", 1_000, started(None, "", "", "")),
        fact("a", 59_999, FactKind::ViewEnded { watch_ms: 5_000 }),
    ]);
    let key = |stream: &str, minute: i64| (stream.to_owned(), t(minute));
    let keys: Vec<_> = out.keys().cloned().collect();
    assert_eq!(keys, vec![key("a", 0), key("a", 60_000), key("b", 0)]);
    let (a0, a1, b0) = (
        &out[&key("a", 0)],
        &out[&key("a", 60_000)],
        &out[&key("b", 0)],
    );
    assert_eq!((a0.start, a1.start, b0.start), (t(0), t(60_000), t(0)));
    let sums = |m: &Minute| {
        (
            m.views_started,
            m.views_ended,
            m.ended_watch_ms,
            m.chat_messages,
        )
    };
    assert_eq!(sums(a0), (1, 1, 5_000, 0));
    assert_eq!(sums(a1), (0, 0, 0, 1));
    assert_eq!(sums(b0), (0, 0, 0, 0));
    assert_eq!(b0.reactions, tally(&[("👍", 1)]));
}

#[test]
fn a_view_start_counts_its_country_and_client_as_labels() {
    let m = one_minute(vec![
        (0, started(Some("se"), "Firefox", "", "desktop")),
        (1_000, started(None, "", "", "")),
        (
            2_000,
            started(Some("XYZ"), "Firefox", "Linux\u{0}", "desktop"),
        ),
    ]);
    assert_eq!(m.views_started, 3);
    assert_eq!(m.countries, tally(&[("SE", 1), ("unknown", 2)]));
    assert_eq!(m.browsers, tally(&[("Firefox", 2), ("unknown", 1)]));
    assert_eq!(m.oses, tally(&[("Linux", 1), ("unknown", 2)]));
    assert_eq!(m.devices, tally(&[("desktop", 2), ("unknown", 1)]));
}

#[test]
fn a_viewer_count_lands_at_its_second_of_the_minute() {
    let m = one_minute(vec![
        (42_999, FactKind::ViewerCount(5)),
        (0, FactKind::ViewerCount(7)),
        (10_100, FactKind::ViewerCount(3)),
        (10_900, FactKind::ViewerCount(4)),
    ]);
    assert_eq!(m.viewer_counts, BTreeMap::from([(0, 7), (10, 4), (42, 5)]));
}

#[test]
fn a_report_gap_longer_than_the_cap_counts_only_the_cap() {
    let m = one_minute(vec![(0, report(90_000, 45_000, Some("720p")))]);
    assert_eq!(m.reports, 1);
    assert_eq!(m.watched_ms, REPORT_GAP_MAX_MS);
    assert_eq!(m.rebuffer_ms, 30_000);
    assert_eq!(m.rendition_ms, tally(&[("720p", 30_000)]));
}

#[test]
fn reports_within_the_cap_add_up() {
    let m = one_minute(vec![
        (0, report(15_000, 500, Some("720p"))),
        (15_000, report(14_000, 0, Some("480p"))),
        (30_000, report(16_000, 1_500, Some("720p"))),
    ]);
    assert_eq!((m.reports, m.watched_ms, m.rebuffer_ms), (3, 45_000, 2_000));
    assert_eq!(m.rendition_ms, tally(&[("480p", 14_000), ("720p", 31_000)]));
}

#[test]
fn a_report_without_watched_time_accounts_no_rendition_time() {
    let m = one_minute(vec![(0, report(0, 0, Some("1080p")))]);
    assert_eq!((m.reports, m.watched_ms), (1, 0));
    assert!(m.rendition_ms.is_empty());
}

#[test]
fn a_report_rendition_is_kept_as_a_label() {
    let m = one_minute(vec![(0, report(10_000, 0, Some(" 720p\u{0}")))]);
    assert_eq!(m.rendition_ms, tally(&[("720p", 10_000)]));
}

#[test]
fn a_report_adds_its_counters_and_its_histogram_values() {
    let delta = ReportDelta {
        watched_ms: 15_000,
        rebuffers: 2,
        switches_up: 1,
        switches_down: 3,
        dropped_frames: 40,
        startup_ms: Some(800),
        latency_ms: Some(3_500),
        bandwidth_kbps: Some(4_200),
        started: true,
        failed: true,
        ..ReportDelta::default()
    };
    let m = one_minute(vec![
        (0, FactKind::Report(delta)),
        (1_000, report(5_000, 0, None)),
    ]);
    assert_eq!((m.reports, m.watched_ms), (2, 20_000));
    assert_eq!((m.rebuffers, m.switches_up, m.switches_down), (2, 1, 3));
    assert_eq!(m.dropped_frames, 40);
    assert_eq!((m.playback_starts, m.failures), (1, 1));
    assert_eq!(m.startup.counts, vec![0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(m.latency.counts, vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(m.bandwidth.counts, vec![0, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert!(m.rendition_ms.is_empty());
}

#[test]
fn a_chatter_counts_once_however_many_messages() {
    let m = one_minute(vec![
        (0, chat("u1")),
        (1_000, chat("u1")),
        (2_000, chat("u2")),
    ]);
    assert_eq!(m.chat_messages, 3);
    assert_eq!(
        m.chatters,
        BTreeSet::from(["u1".to_owned(), "u2".to_owned()])
    );
}

#[test]
fn reactions_are_counted_by_emoji_label() {
    let m = one_minute(vec![
        (0, reaction("👍")),
        (1_000, reaction("🎉")),
        (2_000, reaction(" 👍 ")),
        (3_000, reaction("👍")),
    ]);
    assert_eq!(m.reactions, tally(&[("🎉", 1), ("👍", 3)]));
}

#[test]
fn merging_minutes_sums_their_counts_and_unites_their_chatters() {
    let mut a = one_minute(vec![
        (0, FactKind::ViewEnded { watch_ms: 30_000 }),
        (0, report(20_000, 1_000, Some("720p"))),
        (1_000, chat("u1")),
        (2_000, reaction("👍")),
        (3_000, FactKind::ViewEnded { watch_ms: 9_000 }),
    ]);
    a.startup.add(STARTUP_BINS_MS, 300);
    let mut b = one_minute(vec![
        (0, report(10_000, 500, Some("720p"))),
        (0, report(5_000, 0, Some("480p"))),
        (1_000, chat("u1")),
        (1_000, chat("u2")),
        (2_000, reaction("👍")),
        (2_000, reaction("🎉")),
    ]);
    b.startup.add(STARTUP_BINS_MS, 5_000);
    a.merge(&b);
    assert_eq!(a.start, t(0));
    assert_eq!((a.reports, a.watched_ms, a.rebuffer_ms), (3, 35_000, 1_500));
    assert_eq!((a.views_ended, a.ended_watch_ms), (2, 39_000));
    assert_eq!(a.rendition_ms, tally(&[("480p", 5_000), ("720p", 30_000)]));
    assert_eq!((a.chat_messages, a.chatters.len()), (3, 2));
    assert_eq!(a.reactions, tally(&[("🎉", 1), ("👍", 2)]));
    assert_eq!(a.startup.counts, vec![0, 1, 0, 0, 0, 1, 0, 0, 0]);
}

#[test]
fn on_the_same_second_the_merged_in_viewer_count_wins() {
    let mut stored = Minute {
        viewer_counts: BTreeMap::from([(10, 4), (20, 6)]),
        ..Minute::default()
    };
    let newer = Minute {
        viewer_counts: BTreeMap::from([(20, 9), (30, 2)]),
        ..Minute::default()
    };
    stored.merge(&newer);
    assert_eq!(
        stored.viewer_counts,
        BTreeMap::from([(10, 4), (20, 9), (30, 2)])
    );
}

#[test]
fn folding_a_batch_in_two_halves_and_merging_equals_folding_it_whole() {
    let facts = || {
        vec![
            fact("s", 1_000, FactKind::ViewerCount(3)),
            fact("s", 2_000, report(12_000, 100, Some("720p"))),
            fact("s", 3_000, chat("u1")),
            fact("s", 20_500, FactKind::ViewerCount(4)),
            fact("s", 20_700, FactKind::ViewerCount(5)),
            fact("s", 30_000, chat("u1")),
            fact("s", 40_000, reaction("👍")),
            fact("s", 50_000, report(15_000, 0, Some("480p"))),
        ]
    };
    let whole = fold(facts());
    let mut first = fold(facts().into_iter().take(4));
    let second = fold(facts().into_iter().skip(4));
    let key = ("s".to_owned(), t(0));
    first.get_mut(&key).unwrap().merge(&second[&key]);
    assert_eq!(first, whole);
}

#[test]
fn a_reports_watch_and_rebuffering_time_count_for_its_country_and_device() {
    let at = chrono::DateTime::from_timestamp_millis(1_796_000_000_000).expect("time");
    let report = ReportDelta {
        watched_ms: 15_000,
        rebuffer_ms: 2_000,
        country: Some("de".into()),
        client: Some(ClientKind {
            browser: "Chrome".into(),
            os: "Android".into(),
            device: "mobile".into(),
        }),
        ..ReportDelta::default()
    };
    let folded = fold([Fact {
        stream_id: "s".into(),
        at,
        kind: FactKind::Report(report),
    }]);
    let m = folded.values().next().expect("a minute");
    assert_eq!(m.watched_by_country.get("DE"), Some(&15_000));
    assert_eq!(m.rebuffer_by_country.get("DE"), Some(&2_000));
    assert_eq!(m.watched_by_device.get("mobile"), Some(&15_000));
    assert_eq!(m.rebuffer_by_device.get("mobile"), Some(&2_000));
}
