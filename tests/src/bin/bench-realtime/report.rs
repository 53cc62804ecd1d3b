//! The closing markdown: metric | value | target | met?, then the anchor ratios.

use crate::Args;
use crate::anchor::AnchorRun;
use crate::many_streams::ManyStreams;
use crate::measure::{Chat, Exact};
use crate::one_stream::OneStream;

struct Table(Vec<[String; 4]>);

impl Table {
    fn row(&mut self, metric: String, value: String, target: &str, met: Option<bool>) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        self.0
            .push([metric, value, target.to_owned(), met.to_owned()]);
    }

    fn chat(&mut self, what: &str, chat: &Chat) {
        let l = &chat.latency;
        let have = l.n > 0;
        self.row(
            format!("{what}: chat p50"),
            format!("{:.1} ms", l.p50),
            "<= 50 ms",
            Some(have && l.p50 <= 50.0),
        );
        self.row(
            format!("{what}: chat p99"),
            format!("{:.1} ms (max {:.1})", l.p99, l.max),
            "<= 200 ms",
            Some(have && l.p99 <= 200.0),
        );
        self.row(
            format!("{what}: chat deliveries"),
            format!(
                "{}/{} ({} missing)",
                chat.delivered,
                chat.expected,
                chat.missing()
            ),
            "all",
            Some(chat.missing() == 0),
        );
    }

    fn exact(&mut self, what: String, e: &Exact) {
        self.row(
            what,
            e.text(),
            "<= 2 s",
            Some(e.worst().is_some_and(|t| t <= 2.0)),
        );
    }

    fn join(&mut self, what: &str, secs: f64, opened: usize, total: usize, errors: (usize, &str)) {
        self.row(
            format!("{what}: join time, all"),
            format!("{secs:.2} s ({opened}/{total} open)"),
            "<= 10 s",
            Some(secs <= 10.0 && opened == total),
        );
        self.row(
            format!("{what}: join errors"),
            errors.1.to_owned(),
            "0",
            Some(errors.0 == 0),
        );
    }
}

fn codes(refusals: &[String]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for c in refusals {
        *counts.entry(c.as_str()).or_insert(0) += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(c, n)| format!("{c} x{n}")).collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(", ")
    }
}

fn ratio(rill: f64, anchor: f64) -> String {
    if anchor > 0.0 && rill.is_finite() {
        format!("{:.1}x", rill / anchor)
    } else {
        "n/a".into()
    }
}

fn anchor_line(what: &str, rill: &Chat, a: &AnchorRun) -> String {
    format!(
        "- {what}: anchor join {:.2} s ({} open), chat p50 {:.2} ms, p99 {:.2} ms ({} missing) \
         -> Rill/anchor chat p50 **{}**, p99 **{}**",
        a.join.as_secs_f64(),
        a.opened,
        a.chat.latency.p50,
        a.chat.latency.p99,
        a.chat.missing(),
        ratio(rill.latency.p50, a.chat.latency.p50),
        ratio(rill.latency.p99, a.chat.latency.p99),
    )
}

/// Prints the table; `many` is the 50 x 20 scenario and its anchor, when it ran.
pub fn print(
    args: &Args,
    one: &OneStream,
    many: Option<&(ManyStreams, AnchorRun)>,
    a1: &AnchorRun,
) {
    let mut t = Table(Vec::new());
    let n = one.viewers;
    let w1 = format!("1 stream x {n}");
    t.join(
        &w1,
        one.join.as_secs_f64(),
        one.opened,
        n,
        (one.join_error_count, &one.join_errors),
    );
    t.exact(
        format!("{w1}: count exact after joins"),
        &one.exact_after_join,
    );
    t.chat(&w1, &one.chat);
    let s = &one.storm;
    t.row(
        format!(
            "{w1}: reaction p99 ({}/s for {} s)",
            args.reactions_per_second, args.storm_seconds
        ),
        format!(
            "{:.0} ms (p50 {:.0}, max {:.0})",
            s.latency.p99, s.latency.p50, s.latency.max
        ),
        "<= 1.5 s",
        Some(s.latency.n > 0 && s.latency.p99 <= 1500.0),
    );
    t.row(
        format!("{w1}: reaction frames per viewer per second"),
        format!("mean {:.2}, peak {} in 1 s", s.frames_mean, s.frames_peak),
        "<= 4",
        Some(s.frames_peak <= 4),
    );
    t.row(
        format!("{w1}: reactions delivered (frame totals / accepted)"),
        format!(
            "{:.1}% mean, {:.1}% lowest viewer, of {} accepted",
            s.delivered_mean * 100.0,
            s.delivered_min * 100.0,
            s.sent.saturating_sub(s.late)
        ),
        "100%",
        Some(s.sent > s.late && (s.delivered_min - 1.0).abs() < 1e-9),
    );
    t.row(
        format!("{w1}: reactions refused late (waited > 0.5 s for a function)"),
        format!(
            "{} of {} sent ({:.1}%)",
            s.late,
            s.sent,
            s.late as f64 * 100.0 / s.sent.max(1) as f64
        ),
        "- (the store's rate)",
        None,
    );
    t.exact(
        format!(
            "{w1}: count exact after {} leave (no close frame)",
            one.left
        ),
        &one.exact_after_leave,
    );
    let other = format!(
        "sockets closed by the server {}; chat refusals {}; reaction refusals {}; reaction send errors {}",
        one.closed_by_server,
        codes(&one.chat_refusals),
        codes(&s.refusals),
        s.send_errors
    );
    let clean = one.closed_by_server == 0
        && one.chat_refusals.is_empty()
        && s.refusals.is_empty()
        && s.send_errors == 0;
    t.row(format!("{w1}: other errors"), other, "0", Some(clean));

    let w2 = format!("{} streams x {}", args.streams, args.per_stream);
    if let Some((many, _)) = many {
        let total = many.streams * many.per_stream;
        t.join(
            &w2,
            many.join.as_secs_f64(),
            many.opened,
            total,
            (many.join_error_count, &many.join_errors),
        );
        t.chat(&w2, &many.chat);
        t.row(
            format!("{w2}: other errors"),
            format!(
                "sockets closed by the server {}; chat refusals {}",
                many.closed_by_server,
                codes(&many.chat_refusals)
            ),
            "0",
            Some(many.closed_by_server == 0 && many.chat_refusals.is_empty()),
        );
    }

    println!(
        "\n## Realtime: {n} viewers on one stream, {} x {} streams (targets are for 1,000 \
         viewers and 1,000 reactions/s)\n",
        args.streams, args.per_stream
    );
    println!("| metric | value | target | met? |");
    println!("|---|---|---|---|");
    for [m, v, tg, met] in &t.0 {
        println!("| {m} | {v} | {tg} | {met} |");
    }
    println!(
        "\nAnchor (bare tokio-tungstenite broadcast on loopback, same run, same client code):\n"
    );
    println!("{}", anchor_line(&w1, &one.chat, a1));
    if let Some((many, am)) = many {
        println!("{}", anchor_line(&w2, &many.chat, am));
    }
    println!(
        "\n(gateway: {} instances per function; {} reaction sender sockets)",
        args.instances, args.reaction_senders
    );
}
