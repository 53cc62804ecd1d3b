//! `events-fanout`: table changes (the DynamoDB stream) turned into `stream:*` events.
//!
//! This is the one path for events born outside a WebSocket request: REST chat sends,
//! deletes and pins, stream start and end (from the API or the ingest node), quality
//! samples, Q&A votes, reactions and viewer counts. Items written by socket functions carry
//! `origin = "ws"` and were delivered already, so they are skipped here.
//!
//! Coalescing: within one batch (one poll of the stream: at most 4 a second), all reactions of
//! a stream become one `stream:reaction` frame and all viewer-count changes one
//! `stream:viewer-count` frame carrying the latest count (and the peak, which is raised
//! here: `$connect` only adds to the count). The stream's connection list is read once per
//! batch, whatever the number of events.
//!
//! Presence: joins and leaves of signed-in users (`CONN#` items appearing and disappearing)
//! are announced by name only to small audiences: at most [`NAMED_PRESENCE_MAX`] open
//! connections, at most [`NAMED_PER_BATCH`] names each way per batch. Beyond that everyone
//! gets the count only: naming each of N arriving viewers to all N costs N² deliveries. The reaction frame is
//! `{"total": n, "counts": {"🔥": 3, ...}, "samples": [{"emoji","positionX","positionY"}...]}`
//! with at most [`REACTION_SAMPLES`] samples for the overlay.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use rill_core::event::{Event, EventType};
use rill_core::time;
use serde_json::{Value, json};

use crate::broadcast::broadcast_to;
use crate::{ApiError, App};

/// Positions sent along with a reaction batch, for the floating overlay.
pub const REACTION_SAMPLES: usize = 20;
/// Largest audience (open connections) that is told joins and leaves by name.
pub const NAMED_PRESENCE_MAX: usize = 50;
/// Names per direction (joined, left) per batch.
pub const NAMED_PER_BATCH: usize = 20;

fn image(item: &serde_dynamo::Item) -> Option<Value> {
    if item.is_empty() {
        return None;
    }
    serde_dynamo::from_item::<_, Value>(item.clone()).ok()
}

fn str_of<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// Drops the storage keys so clients get the domain object only.
fn public(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in [
            "pk", "sk", "entity", "origin", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "keyHash",
            "ttl",
        ] {
            o.remove(k);
        }
    }
    v
}

#[derive(Default)]
struct StreamBatch {
    events: Vec<(EventType, Value)>,
    reactions: Vec<Value>,
    viewer_count: Option<(Value, Value)>,
    /// A count above the stored peak: the peak to raise.
    new_peak: Option<u64>,
    joined: Vec<Value>,
    left: Vec<Value>,
}

/// Turns records into per-stream events, in record order, with the coalesced ones last.
fn plan(records: &[EventRecord]) -> BTreeMap<String, StreamBatch> {
    let mut out: BTreeMap<String, StreamBatch> = BTreeMap::new();
    for r in records {
        let new = image(&r.change.new_image);
        let old = image(&r.change.old_image);
        let Some(keys) = image(&r.change.keys) else {
            continue;
        };
        let (Some(pk), Some(sk)) = (str_of(&keys, "pk"), str_of(&keys, "sk")) else {
            continue;
        };
        let Some(stream_id) = pk.strip_prefix("STREAM#") else {
            continue;
        };
        let batch = out.entry(stream_id.to_owned()).or_default();
        let from_socket = new.as_ref().and_then(|n| str_of(n, "origin")) == Some("ws");
        match (r.event_name.as_str(), sk, &new, &old) {
            ("MODIFY", "META", Some(n), Some(o)) => {
                let (ns, os) = (str_of(n, "status"), str_of(o, "status"));
                if ns != os {
                    match ns {
                        Some("live") => batch
                            .events
                            .push((EventType::Start, json!({"stream": public(n.clone())}))),
                        Some("ended" | "cancelled") => batch
                            .events
                            .push((EventType::End, json!({"stream": public(n.clone())}))),
                        _ => {}
                    }
                }
                if n.get("viewerCount") != o.get("viewerCount") {
                    let count = n.get("viewerCount").and_then(Value::as_u64).unwrap_or(0);
                    // The peak is raised here, after the count: never report it below the
                    // count it belongs to.
                    let stored = n.get("peakViewers").and_then(Value::as_u64).unwrap_or(0);
                    if count > stored {
                        batch.new_peak = Some(batch.new_peak.unwrap_or(0).max(count));
                    }
                    let peak = stored.max(count).max(batch.new_peak.unwrap_or(0));
                    batch.viewer_count = Some((json!(count), json!(peak)));
                }
                let pinned = n.get("pinnedMessageId");
                if pinned.is_some() && pinned != o.get("pinnedMessageId") {
                    batch
                        .events
                        .push((EventType::ChatPinned, json!({"messageId": pinned})));
                }
            }
            ("INSERT", sk, Some(n), _) if sk.starts_with("CHAT#") && !from_socket => {
                batch
                    .events
                    .push((EventType::ChatMessage, public(n.clone())));
            }
            ("MODIFY", sk, Some(n), Some(o))
                if sk.starts_with("CHAT#")
                    && n.get("deleted") == Some(&json!(true))
                    && o.get("deleted") != Some(&json!(true)) =>
            {
                batch
                    .events
                    .push((EventType::ChatDeleted, json!({"messageId": n.get("id")})));
            }
            ("INSERT", sk, Some(n), _) if sk.starts_with("REACT#") => {
                batch.reactions.push(n.clone())
            }
            ("INSERT", sk, Some(n), _) if sk.starts_with("Q#") && !from_socket => {
                batch
                    .events
                    .push((EventType::Question, json!({"question": public(n.clone())})));
            }
            ("MODIFY", sk, Some(n), _) if sk.starts_with("Q#") => {
                batch
                    .events
                    .push((EventType::Question, json!({"question": public(n.clone())})));
            }
            ("INSERT", sk, Some(n), _) if sk.starts_with("CONN#") => {
                if let Some(who) = presence(n) {
                    batch.joined.push(who);
                }
            }
            ("REMOVE", sk, _, Some(o)) if sk.starts_with("CONN#") => {
                if let Some(who) = presence(o) {
                    batch.left.push(who);
                }
            }
            ("INSERT", sk, Some(n), _) if sk.starts_with("METRIC#") => {
                batch
                    .events
                    .push((EventType::QualityUpdate, public(n.clone())));
            }
            _ => {}
        }
    }
    out
}

/// `{userId, displayName}` of a signed-in connection item; anonymous ones are not named.
fn presence(conn: &Value) -> Option<Value> {
    let user = str_of(conn, "userId")?;
    Some(json!({"userId": user, "displayName": conn.get("displayName")}))
}

fn reaction_frame(reactions: &[Value]) -> Value {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in reactions {
        if let Some(e) = str_of(r, "emoji") {
            *counts.entry(e.to_owned()).or_default() += 1;
        }
    }
    let samples: Vec<Value> = reactions
        .iter()
        .rev()
        .take(REACTION_SAMPLES)
        .map(|r| json!({"emoji": r.get("emoji"), "positionX": r.get("positionX"), "positionY": r.get("positionY")}))
        .collect();
    json!({"total": reactions.len(), "counts": counts, "samples": samples})
}

/// The Lambda handler: one batch of stream records.
pub async fn handle(app: Arc<App>, event: StreamEvent) -> Result<(), ApiError> {
    let now = time::now();
    for (stream_id, batch) in plan(&event.records) {
        if let Some(peak) = batch.new_peak {
            app.realtime.raise_peak(&stream_id, peak).await?;
        }
        let mut events: Vec<Event> = batch
            .events
            .into_iter()
            .map(|(kind, data)| Event::new(kind, &stream_id, data, now))
            .collect();
        if !batch.reactions.is_empty() {
            events.push(Event::new(
                EventType::Reaction,
                &stream_id,
                reaction_frame(&batch.reactions),
                now,
            ));
        }
        let named = !batch.joined.is_empty() || !batch.left.is_empty();
        if events.is_empty() && batch.viewer_count.is_none() && !named {
            continue;
        }
        let ids = app.realtime.connections_of(&stream_id).await?;
        if named && ids.len() <= NAMED_PRESENCE_MAX {
            for (kind, people) in [
                (EventType::ViewerJoined, batch.joined),
                (EventType::ViewerLeft, batch.left),
            ] {
                for who in people.into_iter().take(NAMED_PER_BATCH) {
                    events.push(Event::new(kind, &stream_id, who, now));
                }
            }
        }
        if let Some((count, peak)) = batch.viewer_count {
            events.push(Event::new(
                EventType::ViewerCount,
                &stream_id,
                json!({"count": count, "peak": peak}),
                now,
            ));
        }
        for e in &events {
            let d = broadcast_to(&app, e, &ids, None).await?;
            tracing::debug!(stream_id = %stream_id, kind = ?e.kind, delivered = d.delivered, pruned = d.pruned, "fanned out");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, keys: Value, new: Option<Value>, old: Option<Value>) -> Value {
        let to_ddb = |v: Value| {
            serde_json::to_value(serde_dynamo::to_item::<_, serde_dynamo::Item>(v).unwrap())
                .unwrap()
        };
        let mut d = json!({"Keys": to_ddb(keys), "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"});
        if let Some(n) = new {
            d["NewImage"] = to_ddb(n);
        }
        if let Some(o) = old {
            d["OldImage"] = to_ddb(o);
        }
        json!({"eventID": "1", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
               "awsRegion": "us-east-1", "eventSourceARN": "arn", "dynamodb": d})
    }

    fn parse(records: Vec<Value>) -> Vec<EventRecord> {
        let e: StreamEvent = serde_json::from_value(json!({ "Records": records })).expect("event");
        e.records
    }

    #[test]
    fn reactions_and_viewer_counts_are_coalesced_per_stream() {
        let mut records = Vec::new();
        for i in 0..50 {
            let emoji = if i % 2 == 0 { "🔥" } else { "👏" };
            records.push(record(
                "INSERT",
                json!({"pk":"STREAM#a","sk":format!("REACT#{i}")}),
                Some(json!({"pk":"STREAM#a","sk":format!("REACT#{i}"),"emoji":emoji,"positionX":1.0})),
                None,
            ));
        }
        for c in 1..5 {
            records.push(record(
                "MODIFY",
                json!({"pk":"STREAM#a","sk":"META"}),
                Some(json!({"status":"live","viewerCount":c,"peakViewers":4})),
                Some(json!({"status":"live","viewerCount":c - 1,"peakViewers":4})),
            ));
        }
        let plan = plan(&parse(records));
        let a = &plan["a"];
        assert_eq!(a.reactions.len(), 50);
        assert_eq!(
            a.viewer_count,
            Some((json!(4), json!(4))),
            "only the latest count"
        );
        let frame = reaction_frame(&a.reactions);
        assert_eq!(frame["total"], 50);
        assert_eq!(frame["counts"]["🔥"], 25);
        assert_eq!(frame["samples"].as_array().unwrap().len(), REACTION_SAMPLES);
    }

    #[test]
    fn socket_born_items_are_not_sent_twice_and_status_changes_become_events() {
        let records = vec![
            record(
                "INSERT",
                json!({"pk":"STREAM#a","sk":"CHAT#1"}),
                Some(json!({"id":"1","content":"ws","origin":"ws"})),
                None,
            ),
            record(
                "INSERT",
                json!({"pk":"STREAM#a","sk":"CHAT#2"}),
                Some(json!({"id":"2","content":"rest","origin":"rest","pk":"x"})),
                None,
            ),
            record(
                "MODIFY",
                json!({"pk":"STREAM#a","sk":"CHAT#2"}),
                Some(json!({"id":"2","deleted":true})),
                Some(json!({"id":"2","deleted":false})),
            ),
            record(
                "MODIFY",
                json!({"pk":"STREAM#a","sk":"META"}),
                Some(json!({"status":"ended","keyHash":"secret"})),
                Some(json!({"status":"live","keyHash":"secret"})),
            ),
        ];
        let plan = plan(&parse(records));
        let kinds: Vec<EventType> = plan["a"].events.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                EventType::ChatMessage,
                EventType::ChatDeleted,
                EventType::End
            ]
        );
        assert_eq!(plan["a"].events[0].1["content"], "rest");
        assert!(plan["a"].events[0].1.get("pk").is_none());
        assert!(
            !plan["a"].events[2].1.to_string().contains("secret"),
            "the key hash never leaves"
        );
    }

    #[test]
    fn signed_in_joins_and_leaves_are_named_and_a_higher_count_raises_the_peak() {
        let conn = |sk: &str, user: Option<&str>| {
            let mut c = json!({"pk": "STREAM#a", "sk": sk, "connectionId": sk, "streamId": "a"});
            if let Some(u) = user {
                c["userId"] = json!(u);
                c["displayName"] = json!(format!("{u}!"));
            }
            c
        };
        let key = |sk: &str| json!({"pk": "STREAM#a", "sk": sk});
        let records = vec![
            record(
                "INSERT",
                key("CONN#1"),
                Some(conn("CONN#1", Some("ann"))),
                None,
            ),
            record("INSERT", key("CONN#2"), Some(conn("CONN#2", None)), None),
            record(
                "REMOVE",
                key("CONN#3"),
                None,
                Some(conn("CONN#3", Some("ben"))),
            ),
            record(
                "MODIFY",
                key("META"),
                Some(json!({"status": "live", "viewerCount": 5, "peakViewers": 3})),
                Some(json!({"status": "live", "viewerCount": 4, "peakViewers": 3})),
            ),
        ];
        let plan = plan(&parse(records));
        let a = &plan["a"];
        assert_eq!(a.joined, [json!({"userId": "ann", "displayName": "ann!"})]);
        assert_eq!(a.left, [json!({"userId": "ben", "displayName": "ben!"})]);
        assert_eq!(a.new_peak, Some(5));
        assert_eq!(a.viewer_count, Some((json!(5), json!(5))));

        // A count below the stored peak raises nothing.
        let lower = vec![record(
            "MODIFY",
            key("META"),
            Some(json!({"status": "live", "viewerCount": 2, "peakViewers": 9})),
            Some(json!({"status": "live", "viewerCount": 3, "peakViewers": 9})),
        )];
        let plan = super::plan(&parse(lower));
        assert_eq!(plan["a"].new_peak, None);
        assert_eq!(plan["a"].viewer_count, Some((json!(2), json!(9))));
    }
}
