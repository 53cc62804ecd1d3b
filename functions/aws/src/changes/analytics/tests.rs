//! The analytics decoder, fed records in the JSON shape Lambda (and the local gateway)
//! delivers, with images built from the store's own item structs where there is one.

use aws_lambda_events::event::dynamodb::Event;
use serde_json::{Value, json};

use rill_core::analytics::{ClientKind, FactKind};
use rill_core::chat::{ChatMessage, Reaction};
use rill_core::key::KeyHash;
use rill_core::realtime::Connection;
use rill_core::stream::{NewStream, Stream};

use super::*;
use crate::keys::Key;

fn ddb<T: serde::Serialize>(item: &T) -> Value {
    let item: serde_dynamo::Item = serde_dynamo::to_item(item).expect("serialisable item");
    serde_json::to_value(item).expect("json")
}

fn record(name: &str, key: &Key, seq: u32, new: Option<Value>, old: Option<Value>) -> Value {
    let mut d = json!({
        "Keys": {"pk": {"S": key.pk}, "sk": {"S": key.sk}},
        "SequenceNumber": seq.to_string(), "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": 1_796_000_000,
    });
    if let Some(n) = new {
        d["NewImage"] = n;
    }
    if let Some(o) = old {
        d["OldImage"] = o;
    }
    json!({"eventID": seq.to_string(), "eventName": name, "eventVersion": "1.1",
           "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": "arn",
           "dynamodb": d})
}

fn classify(ua: &str) -> ClientKind {
    ClientKind {
        browser: format!("browser of {ua}"),
        os: "os".into(),
        device: "desktop".into(),
    }
}

fn decoded(records: Vec<Value>) -> (Vec<Fact>, BTreeMap<String, String>) {
    let event: Event = serde_json::from_value(json!({ "Records": records })).expect("event");
    facts(&event.records, &classify)
}

fn at(raw: &str) -> Timestamp {
    time::parse(raw).expect("time")
}

fn connection(id: &str, counted: bool) -> Connection {
    Connection {
        connection_id: id.into(),
        stream_id: "s".into(),
        user_id: Some("u".into()),
        display_name: Some("U".into()),
        connected_at: at("2026-12-07T21:00:05.000Z"),
        counted,
        country: Some("DE".into()),
        user_agent: Some("UA".into()),
    }
}

/// A `VIEWER#` image as `record_heartbeat` leaves it.
fn viewer(last_seen: &str, buffering: u64, startup: Option<u64>, error: Option<&str>) -> Value {
    let mut v = json!({
        "pk": {"S": "STREAM#s"}, "sk": {"S": "VIEWER#c"}, "entity": {"S": "viewer"},
        "lastSeen": {"S": last_seen}, "heartbeats": {"N": "1"},
        "bufferingMs": {"N": buffering.to_string()}, "rebuffers": {"N": (buffering / 100).to_string()},
        "switchesUp": {"N": "1"}, "switchesDown": {"N": "0"}, "droppedFrames": {"N": "0"},
        "quality": {"S": "720p"}, "latencyMs": {"N": "3200"}, "bandwidthKbps": {"N": "4800"},
    });
    if let Some(s) = startup {
        v["startupMs"] = json!({"N": s.to_string()});
        v["started"] = json!({"BOOL": true});
    }
    if let Some(e) = error {
        v["fatalError"] = json!({"S": e});
    }
    v
}

#[test]
fn a_counted_socket_starts_a_view_with_its_country_and_client_and_the_owners_does_not() {
    let (facts, positions) = decoded(vec![
        record(
            "INSERT",
            &keys::connection("s", "c1"),
            7,
            Some(ddb(&ConnectionItem::new(&connection("c1", true), 0))),
            None,
        ),
        record(
            "INSERT",
            &keys::connection("s", "c2"),
            8,
            Some(ddb(&ConnectionItem::new(&connection("c2", false), 0))),
            None,
        ),
    ]);
    assert_eq!(
        facts,
        vec![Fact {
            stream_id: "s".into(),
            at: at("2026-12-07T21:00:05.000Z"),
            kind: FactKind::ViewStarted {
                country: Some("DE".into()),
                client: classify("UA"),
            },
        }]
    );
    // The position is the last record that meant something for the stream.
    assert_eq!(positions["s"], format!("{:0>40}", 7));
}

#[test]
fn a_heartbeat_is_the_difference_of_the_views_running_totals() {
    let first = viewer("2026-12-07T21:00:10.000Z", 0, Some(900), None);
    let second = viewer(
        "2026-12-07T21:00:25.000Z",
        300,
        Some(900),
        Some("networkError"),
    );
    let key = keys::viewer("s", "c");
    let (facts, _) = decoded(vec![
        record("INSERT", &key, 1, Some(first.clone()), None),
        record("MODIFY", &key, 2, Some(second), Some(first)),
    ]);
    let kinds: Vec<FactKind> = facts.into_iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![
            FactKind::Report(ReportDelta {
                watched_ms: 0,
                rendition: Some("720p".into()),
                switches_up: 1,
                startup_ms: Some(900),
                latency_ms: Some(3200),
                bandwidth_kbps: Some(4800),
                started: true,
                ..ReportDelta::default()
            }),
            FactKind::Report(ReportDelta {
                watched_ms: 15_000,
                rendition: Some("720p".into()),
                rebuffer_ms: 300,
                rebuffers: 3,
                latency_ms: Some(3200),
                bandwidth_kbps: Some(4800),
                failed: true,
                ..ReportDelta::default()
            }),
        ]
    );
}

#[test]
fn a_report_after_a_long_silence_accounts_for_the_cap_only() {
    let before = viewer("2026-12-07T21:00:10.000Z", 0, None, None);
    let after = viewer("2026-12-07T21:10:10.000Z", 0, None, None);
    let (facts, _) = decoded(vec![record(
        "MODIFY",
        &keys::viewer("s", "c"),
        1,
        Some(after),
        Some(before),
    )]);
    let FactKind::Report(r) = &facts[0].kind else {
        panic!("not a report: {facts:?}");
    };
    assert_eq!(r.watched_ms, REPORT_GAP_MAX_MS);
}

#[test]
fn an_ended_view_carries_its_watch_time_at_its_end() {
    let image = json!({
        "pk": {"S": "STREAM#s"}, "sk": {"S": "SESSION#c"}, "entity": {"S": "session"},
        "watchMs": {"N": "61000"}, "connectedAt": {"S": "2026-12-07T21:00:00.000Z"},
        "endedAt": {"S": "2026-12-07T21:01:01.000Z"},
    });
    let (facts, _) = decoded(vec![record(
        "INSERT",
        &keys::session("s", "c"),
        1,
        Some(image),
        None,
    )]);
    assert_eq!(facts[0].at, at("2026-12-07T21:01:01.000Z"));
    assert_eq!(facts[0].kind, FactKind::ViewEnded { watch_ms: 61_000 });
}

fn stream_with(viewers: u64) -> Value {
    let input: NewStream =
        serde_json::from_value(json!({"channelId": "ch", "title": "t"})).expect("input");
    let mut s = Stream::create("s".into(), "owner".into(), input, time::now()).expect("valid");
    s.stats.current_viewers = viewers;
    ddb(&StreamItem::new(&s, &KeyHash("h".into())))
}

#[test]
fn a_changed_viewer_count_is_a_count_at_the_records_time_and_other_writes_are_not() {
    let key = keys::stream("s");
    let (facts, _) = decoded(vec![
        record(
            "MODIFY",
            &key,
            1,
            Some(stream_with(4)),
            Some(stream_with(3)),
        ),
        record(
            "MODIFY",
            &key,
            2,
            Some(stream_with(4)),
            Some(stream_with(4)),
        ),
    ]);
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].kind, FactKind::ViewerCount(4));
    assert_eq!(facts[0].at.timestamp(), 1_796_000_000);
}

#[test]
fn chat_names_its_author_and_reactions_their_emoji() {
    let posted = at("2026-12-07T21:02:00.000Z");
    let message = ChatMessage {
        id: "m".into(),
        stream_id: "s".into(),
        author_id: "alice".into(),
        author_name: "Alice".into(),
        content: "hi".into(),
        created_at: posted,
        is_pinned: false,
        deleted: false,
    };
    let reaction = Reaction {
        id: "r".into(),
        stream_id: "s".into(),
        user_id: "bob".into(),
        emoji: "🔥".into(),
        position_x: None,
        position_y: None,
        created_at: posted,
    };
    let (facts, _) = decoded(vec![
        record(
            "INSERT",
            &keys::chat("s", "m"),
            1,
            Some(ddb(&ChatItem::new(
                &message,
                rill_core::store::Origin::Rest,
            ))),
            None,
        ),
        record(
            "INSERT",
            &keys::reaction("s", "r"),
            2,
            Some(ddb(&ReactionItem::new(&reaction))),
            None,
        ),
    ]);
    let kinds: Vec<FactKind> = facts.into_iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![
            FactKind::Chat {
                user_id: "alice".into()
            },
            FactKind::Reaction {
                emoji: "🔥".into()
            },
        ]
    );
}

#[test]
fn a_count_is_dated_by_presences_clock_when_the_item_says_when_it_was_taken() {
    let mut counted = stream_with(2);
    counted["countedAt"] = json!({"S": "2026-12-07T21:00:41.250Z"});
    let (facts, _) = decoded(vec![record(
        "MODIFY",
        &keys::stream("s"),
        1,
        Some(counted),
        Some(stream_with(1)),
    )]);
    assert_eq!(facts[0].at, at("2026-12-07T21:00:41.250Z"));
    assert_eq!(facts[0].kind, FactKind::ViewerCount(2));
}

#[test]
fn a_report_carries_the_views_country_and_parsed_client() {
    let mut image = viewer("2026-12-07T21:00:10.000Z", 0, None, None);
    image["country"] = json!({"S": "DE"});
    image["userAgent"] = json!({"S": "UA"});
    let (facts, _) = decoded(vec![record(
        "INSERT",
        &keys::viewer("s", "c"),
        1,
        Some(image),
        None,
    )]);
    let FactKind::Report(r) = &facts[0].kind else {
        panic!("not a report: {facts:?}");
    };
    assert_eq!(r.country.as_deref(), Some("DE"));
    assert_eq!(r.client, Some(classify("UA")));
}
