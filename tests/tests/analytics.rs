//! Stream analytics on the real binaries: two viewers' sockets (one signed in from a
//! desktop Chrome in Germany, one anonymous iPhone that leaves before playback starts),
//! their heartbeats, chat and reactions go through the table's stream into the minute
//! buckets (folded by `events-presence`), and `GET /api/streams/{id}/analytics` answers
//! numbers that match what this test did: views, unique viewers, exits before start,
//! startup and latency histograms, rebuffering, chat and reactions, countries, browsers
//! and devices; as JSON, as CSV, per view, and across the channel. Others are refused.

use std::time::{Duration, Instant};

use rill_tests::{Stack, User};
use serde_json::{Value, json};

const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";

/// Polls the analytics until `done` holds (20 s at most), then returns them.
async fn analytics_when(
    stack: &Stack,
    owner: &User,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = owner
            .get(stack, &format!("/api/streams/{id}/analytics"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        if done(&r.body) {
            return r.body;
        }
        assert!(Instant::now() < deadline, "{what}: {}", r.body["summary"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn what_viewers_did_comes_back_as_analytics_json_csv_and_views() {
    let stack = Stack::start();
    let owner = User::named("an-owner");
    let alice = User::named("an-alice");
    let id = stack
        .live_stream(&owner, "analytics", "Counted", json!({}))
        .await;

    let mut desk = stack
        .socket_with_headers(
            &id,
            &alice,
            &[
                ("user-agent", CHROME_LINUX),
                ("cloudfront-viewer-country", "de"),
            ],
        )
        .await;
    let mut phone = stack
        .socket_with_headers(&id, &User::anonymous(), &[("user-agent", SAFARI_IPHONE)])
        .await;
    // The phone reports that it has not started, then leaves: an exit before video start.
    phone
        .send_json(json!({"action": "heartbeat", "started": false}))
        .await;
    desk.send_json(
        json!({"action": "heartbeat", "quality": "720p", "startupMs": 800,
        "started": true, "latencyMs": 2500, "bandwidthKbps": 5000}),
    )
    .await;
    // The phone leaves once both are counted (presence sets the count within ~1.3 s).
    rill_tests::wait_for("two viewers counted", Duration::from_secs(15), || async {
        User::anonymous()
            .get(&stack, &format!("/api/streams/{id}"))
            .await
            .body["stats"]["currentViewers"]
            == 2
    })
    .await;
    phone.close().await;
    desk.send_json(
        json!({"action": "heartbeat", "quality": "480p", "buffering": 400,
        "rebuffers": 1, "switchesDown": 1, "latencyMs": 3500, "bandwidthKbps": 1800}),
    )
    .await;
    for text in ["hello", "again"] {
        desk.send_json(json!({"action": "chat", "content": text}))
            .await;
    }
    for emoji in ["🔥", "🔥", "👏"] {
        desk.send_json(json!({"action": "react", "emoji": emoji}))
            .await;
    }
    // What the table acknowledged: a reaction that waited over 0.5 s for its function (a
    // loaded machine) is refused `reaction_late`, not stored. Count what was stored.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut stored: std::collections::BTreeMap<String, u64> = Default::default();
    for item in stack.items_with_sk_prefix("REACT#").await {
        let emoji = item["emoji"].as_s().expect("emoji").clone();
        *stored.entry(emoji).or_default() += 1;
    }
    let reacted: u64 = stored.values().sum();
    assert!(
        reacted >= 1,
        "the first reaction of an instance is never refused"
    );
    let stored = serde_json::to_value(&stored).expect("json");

    let body = analytics_when(&stack, &owner, &id, "every fact folded", |b| {
        let s = &b["summary"];
        s["views"] == 2
            && s["chatMessages"] == 2
            && s["reactions"] == stored
            && s["exitsBeforeStartPercent"] == 50.0
            && s["rebufferPercent"].is_number()
            && s["peakViewers"] == 2
    })
    .await;
    let s = &body["summary"];
    assert_eq!(body["status"], "live");
    assert_eq!(s["uniqueViewers"], 2, "alice and one anonymous view");
    assert_eq!(s["chatters"], 1);
    assert_eq!(s["chattedPercent"], 50.0);
    assert_eq!(s["playbackFailurePercent"], 0.0);
    assert_eq!(s["countries"], json!({"DE": 1, "unknown": 1}));
    assert_eq!(s["browsers"], json!({"Chrome": 1, "Mobile Safari": 1}));
    assert_eq!(s["oses"], json!({"Linux": 1, "iOS": 1}));
    assert_eq!(s["devices"], json!({"desktop": 1, "mobile": 1}));
    // One startup time (800 ms) in the (500, 1000] bin; two latencies, 2.5 s and 3.5 s.
    let bin = |h: &Value, up_to: u64| {
        h.as_array()
            .and_then(|bins| bins.iter().find(|b| b["upTo"] == up_to))
            .map(|b| b["count"].clone())
    };
    assert_eq!(bin(&s["startupHistogram"], 1000), Some(json!(1)));
    assert_eq!(bin(&s["latencyHistogram"], 3000), Some(json!(1)));
    assert_eq!(bin(&s["latencyHistogram"], 4000), Some(json!(1)));
    assert_eq!(bin(&s["bandwidthHistogram"], 2000), Some(json!(1)));
    assert_eq!(bin(&s["bandwidthHistogram"], 5000), Some(json!(1)));
    // 400 ms of rebuffering over the seconds between alice's two reports.
    let rebuffer = s["rebufferPercent"].as_f64().expect("rebuffer %");
    assert!(rebuffer > 10.0 && rebuffer <= 100.0, "{rebuffer}");
    assert!(s["switchesDownPerViewerMinute"].as_f64().expect("switches") > 0.0);
    assert_eq!(
        s["renditionPercent"],
        json!({"720p": 100.0}),
        "the interval played 720p"
    );
    // The series covers the stream's life, minute by minute, and adds up to the summary.
    let series = body["series"].as_array().expect("series");
    assert!(!series.is_empty());
    let total = |field: &str| {
        series
            .iter()
            .map(|r| r[field].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(total("chatMessages"), 2);
    assert_eq!(total("reactions"), reacted);
    assert_eq!(total("viewsStarted"), 2);
    assert_eq!(total("viewsEnded"), 1);
    assert_eq!(
        series
            .iter()
            .map(|r| r["viewersMax"].as_u64().unwrap_or(0))
            .max(),
        Some(2)
    );

    // CSV: the same series, one line per minute after the header.
    let csv = owner
        .get(&stack, &format!("/api/streams/{id}/analytics?format=csv"))
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("minute,viewers_max,viewers_avg"));
    assert_eq!(lines.len(), series.len() + 1);

    // Per view: alice's open view with her report, the phone's ended one.
    let views = owner
        .get(
            &stack,
            &format!("/api/streams/{id}/analytics?view=sessions"),
        )
        .await;
    assert_eq!(views.status, 200, "{}", views.text);
    let items = views.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", views.text);
    let mine = items
        .iter()
        .find(|v| v["userId"] == "an-alice")
        .expect("alice's view");
    assert!(mine["endedAt"].is_null());
    assert_eq!(mine["report"]["startupMs"], 800);
    assert_eq!(mine["report"]["rebuffers"], 1);
    let gone = items.iter().find(|v| v["userId"].is_null()).expect("phone");
    assert!(gone["endedAt"].is_string());
    assert_eq!(gone["report"]["started"], false);
    let csv = owner
        .get(
            &stack,
            &format!("/api/streams/{id}/analytics?view=sessions&format=csv"),
        )
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert_eq!(csv.text.split("\r\n").filter(|l| !l.is_empty()).count(), 3);

    // The channel's analytics: this stream's row and the totals; not for strangers.
    let channel = owner.get(&stack, "/api/channels/analytics/analytics").await;
    assert_eq!(channel.status, 200, "{}", channel.text);
    let totals = &channel.body["totals"];
    assert_eq!(totals["streams"], 1, "{}", channel.text);
    assert_eq!(totals["views"], 2);
    assert_eq!(totals["uniqueViewers"], 2);
    assert_eq!(totals["chatMessages"], 2);
    assert_eq!(totals["reactions"], reacted);
    assert_eq!(totals["peakViewers"], 2);
    assert_eq!(channel.body["streams"][0]["streamId"], id.as_str());
    assert_eq!(channel.body["truncated"], false);
    let r = User::named("an-stranger")
        .get(&stack, "/api/channels/analytics/analytics")
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    desk.close().await;
}

#[tokio::test]
async fn analytics_are_the_owners_and_moderators_only_and_bad_queries_are_400() {
    let stack = Stack::start();
    let owner = User::named("an2-owner");
    let id = stack
        .live_stream(&owner, "analytics-2", "Private numbers", json!({}))
        .await;
    let path = format!("/api/streams/{id}/analytics");
    let r = User::anonymous().get(&stack, &path).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = User::named("an2-stranger").get(&stack, &path).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "not_moderator");
    let r = owner
        .get(&stack, "/api/streams/01JDQ0000000000000000000ZZ/analytics")
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    for bad in ["format=pdf", "view=everything", "from=yesterday", "to="] {
        let r = owner.get(&stack, &format!("{path}?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "invalid_query", "{bad}");
    }
    // A stream nobody watched: zeros, not errors; `from` after `to` is an empty range.
    let r = owner.get(&stack, &path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["summary"]["views"], 0);
    let r = owner
        .get(
            &stack,
            &format!("{path}?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["series"], json!([]));
}

/// A batch the table's stream delivers again (a retry, a bisected batch) adds nothing the
/// second time: each bucket update is conditional on the batch's change position, on the
/// real DynamoDB Local. A later batch adds.
#[tokio::test]
async fn a_redelivered_batch_counts_once_and_a_later_one_adds() {
    use rill_core::analytics::Minute;
    use rill_core::store::AnalyticsStore;
    let stack = Stack::start();
    let store = stack.store().await;
    let start = rill_core::time::parse("2026-12-07T21:00:00.000Z").expect("time");
    let mut delta = Minute {
        start,
        views_started: 2,
        chat_messages: 3,
        ..Minute::default()
    };
    delta.reactions.insert("🔥".into(), 4);
    delta.viewer_counts.insert(12, 2);
    let first = format!("{:0>40}", 100);
    for _ in 0..2 {
        store
            .add_minutes("s-redelivered", std::slice::from_ref(&delta), &first)
            .await
            .expect("add");
    }
    let read = |store: rill_aws::store::DynamoStore| async move {
        let to = start + chrono::Duration::minutes(1);
        store
            .minutes("s-redelivered", start, to)
            .await
            .expect("minutes")
    };
    let once = read(stack.store().await).await;
    assert_eq!(once.len(), 1);
    assert_eq!((once[0].views_started, once[0].chat_messages), (2, 3));
    assert_eq!(once[0].reactions.get("🔥"), Some(&4));
    // An older position (the first half of a bisected batch already applied) adds nothing.
    store
        .add_minutes("s-redelivered", &[delta.clone()], &format!("{:0>40}", 50))
        .await
        .expect("add");
    let later = format!("{:0>40}", 200);
    store
        .add_minutes("s-redelivered", &[delta], &later)
        .await
        .expect("add");
    let twice = read(stack.store().await).await;
    assert_eq!((twice[0].views_started, twice[0].chat_messages), (4, 6));
    assert_eq!(twice[0].reactions.get("🔥"), Some(&8));
    assert_eq!(twice[0].viewer_counts.get(&12), Some(&2));
}
