//! The decoder, fed records built from the very item structs the store writes, in the JSON
//! shape Lambda (and the local gateway) delivers.

use aws_lambda_events::event::dynamodb::Event;
use serde::Serialize;
use serde_json::{Value, json};

use rill_core::key::KeyHash;
use rill_core::stream::NewStream;
use rill_core::time;

use super::*;
use crate::keys::Key;

fn ddb<T: Serialize>(item: &T) -> Value {
    let item: Item = serde_dynamo::to_item(item).expect("serialisable item");
    serde_json::to_value(item).expect("json")
}

fn record(name: &str, key: &Key, new: Option<Value>, old: Option<Value>) -> Value {
    let mut d = json!({
        "Keys": {"pk": {"S": key.pk}, "sk": {"S": key.sk}},
        "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(n) = new {
        d["NewImage"] = n;
    }
    if let Some(o) = old {
        d["OldImage"] = o;
    }
    json!({"eventID": "1", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
           "awsRegion": "us-east-1", "eventSourceARN": "arn", "dynamodb": d})
}

fn decoded(records: Vec<Value>) -> Vec<Change> {
    let event: Event = serde_json::from_value(json!({ "Records": records })).expect("event");
    decode(&event.records)
}

fn stream(status: StreamStatus) -> Stream {
    let input: NewStream =
        serde_json::from_value(json!({"channelId": "ch", "title": "t"})).expect("input");
    let mut s = Stream::create(
        "01JDQ0000000000000000000AA".into(),
        "owner".into(),
        input,
        time::now(),
    )
    .expect("valid");
    s.status = status;
    s
}

fn stream_image(s: &Stream) -> Value {
    ddb(&StreamItem::new(s, &KeyHash("secret-hash".into())))
}

fn message(id: &str, deleted: bool) -> ChatMessage {
    ChatMessage {
        id: id.into(),
        stream_id: "s".into(),
        author_id: "u".into(),
        author_name: "U".into(),
        content: if deleted { String::new() } else { "hi".into() },
        created_at: time::now(),
        is_pinned: false,
        deleted,
    }
}

fn connection(id: &str, user: Option<&str>) -> Connection {
    Connection {
        connection_id: id.into(),
        stream_id: "s".into(),
        user_id: user.map(str::to_owned),
        display_name: user.map(|u| format!("{u}!")),
        connected_at: time::now(),
        counted: true,
        country: None,
        user_agent: None,
    }
}

#[test]
fn a_stream_going_live_decodes_to_the_stream_without_its_key_hash() {
    let (old, mut new) = (
        stream(StreamStatus::Preparing),
        stream(StreamStatus::Preparing),
    );
    new.status = StreamStatus::Live;
    let key = keys::stream(&new.id);
    let changes = decoded(vec![record(
        "MODIFY",
        &key,
        Some(stream_image(&new)),
        Some(stream_image(&old)),
    )]);
    assert_eq!(changes, [Change::StreamStarted(new.clone())]);
    let payload = serde_json::to_string(&new).expect("json");
    assert!(!payload.contains("secret-hash") && !payload.contains("keyHash"));
}

#[test]
fn ending_or_cancelling_a_stream_decodes_to_stream_ended() {
    for (from, to) in [
        (StreamStatus::Live, StreamStatus::Ended),
        (StreamStatus::Scheduled, StreamStatus::Cancelled),
    ] {
        let (old, new) = (stream(from), stream(to));
        let changes = decoded(vec![record(
            "MODIFY",
            &keys::stream(&new.id),
            Some(stream_image(&new)),
            Some(stream_image(&old)),
        )]);
        assert_eq!(changes, [Change::StreamEnded(new)]);
    }
}

#[test]
fn one_stream_write_can_mean_a_status_and_a_pin_in_that_order_but_never_a_count() {
    let old = stream(StreamStatus::Preparing);
    let mut new = stream(StreamStatus::Live);
    new.stats.current_viewers = 7;
    new.stats.peak_viewers = 5;
    new.pinned_message_id = Some("m1".into());
    let changes = decoded(vec![record(
        "MODIFY",
        &keys::stream(&new.id),
        Some(stream_image(&new)),
        Some(stream_image(&old)),
    )]);
    assert_eq!(
        changes,
        [
            // The count is the presence function's to send (it wrote it).
            Change::StreamStarted(new.clone()),
            Change::MessagePinned {
                stream_id: new.id.clone(),
                message_id: "m1".into()
            },
        ]
    );
}

#[test]
fn a_stream_write_that_changes_nothing_watched_decodes_to_nothing() {
    let old = stream(StreamStatus::Live);
    let mut new = old.clone();
    new.title = "renamed".into();
    new.pinned_message_id = None;
    let changes = decoded(vec![record(
        "MODIFY",
        &keys::stream(&new.id),
        Some(stream_image(&new)),
        Some(stream_image(&old)),
    )]);
    assert_eq!(changes, []);
}

#[test]
fn a_chat_message_keeps_where_it_was_written() {
    let records = [Origin::Socket, Origin::Rest].map(|origin| {
        let m = message(origin.as_str(), false);
        record(
            "INSERT",
            &keys::chat("s", &m.id),
            Some(ddb(&ChatItem::new(&m, origin))),
            None,
        )
    });
    let changes = decoded(records.to_vec());
    let kinds: Vec<(String, Origin)> = changes
        .into_iter()
        .map(|c| match c {
            Change::ChatPosted { message, origin } => (message.id, origin),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ws".to_owned(), Origin::Socket),
            ("rest".to_owned(), Origin::Rest)
        ]
    );
}

#[test]
fn only_the_flip_to_deleted_is_a_chat_deletion() {
    let key = keys::chat("s", "m");
    let item = |deleted| Some(ddb(&ChatItem::new(&message("m", deleted), Origin::Rest)));
    let changes = decoded(vec![
        record("MODIFY", &key, item(true), item(false)),
        // Pinning rewrites the item too; it is not a deletion.
        record("MODIFY", &key, item(false), item(false)),
        record("MODIFY", &key, item(true), item(true)),
    ]);
    assert_eq!(
        changes,
        [Change::ChatDeleted {
            stream_id: "s".into(),
            message_id: "m".into()
        }]
    );
}

#[test]
fn sockets_opening_and_closing_are_joins_and_leaves() {
    let ann = connection("c1", Some("ann"));
    let anon = connection("c2", None);
    let ann_item = ConnectionItem::new(&ann, 1);
    let anon_item = ConnectionItem::new(&anon, 1);
    let changes = decoded(vec![
        record(
            "INSERT",
            &keys::connection("s", "c1"),
            Some(ddb(&ann_item)),
            None,
        ),
        record(
            "REMOVE",
            &keys::connection("s", "c2"),
            None,
            Some(ddb(&anon_item)),
        ),
    ]);
    let at = format!("{:0>40}", 1);
    assert_eq!(
        changes,
        [
            Change::ViewerJoined {
                connection: ann,
                position: at.clone()
            },
            Change::ViewerLeft {
                connection: anon,
                position: at
            }
        ]
    );
}

#[test]
fn positions_compare_like_the_sequence_numbers_they_come_from() {
    let at = |seq: &str| {
        let mut r = record("INSERT", &keys::connection("s", "c"), None, None);
        r["dynamodb"]["SequenceNumber"] = json!(seq);
        let r: EventRecord = serde_json::from_value(r).expect("record");
        position(&r)
    };
    assert!(at("999") < at("1000"));
    assert!(at("000000000000000000099") < at("100000000000000000000"));
    assert_eq!(at("42").len(), 40);
}

#[test]
fn questions_are_asked_then_changed() {
    let q = Question {
        id: "q".into(),
        stream_id: "s".into(),
        author_id: "u".into(),
        author_name: "U".into(),
        content: "why?".into(),
        created_at: time::now(),
        upvotes: 0,
        answered: false,
    };
    let mut voted = q.clone();
    voted.upvotes = 1;
    let key = keys::question("s", "q");
    let changes = decoded(vec![
        record(
            "INSERT",
            &key,
            Some(ddb(&QuestionItem::new(&q, Origin::Socket))),
            None,
        ),
        record(
            "MODIFY",
            &key,
            Some(ddb(&QuestionItem::new(&voted, Origin::Socket))),
            Some(ddb(&QuestionItem::new(&q, Origin::Socket))),
        ),
    ]);
    assert_eq!(
        changes,
        [
            Change::QuestionAsked {
                question: q,
                origin: Origin::Socket
            },
            Change::QuestionChanged(voted)
        ]
    );
}

#[test]
fn reactions_and_samples_decode_to_their_domain_values() {
    let reaction = Reaction {
        id: "r".into(),
        stream_id: "s".into(),
        user_id: "u".into(),
        emoji: "🔥".into(),
        position_x: Some(0.5),
        position_y: None,
        created_at: time::now(),
    };
    let sample = QualitySample {
        stream_id: "s".into(),
        at: time::now(),
        input_kbps: 2500.0,
        fps: 30.0,
        width: 1280,
        height: 720,
        frames: 300,
        dropped_frames: 0,
        late_frames: 0,
        encoder_speed: 1.5,
        rtt_ms: None,
        packet_loss: None,
        health: 100,
        viewers: 3,
        protocol: "rtmp".into(),
        governor_level: 0,
        shed_frames: 0,
    };
    let changes = decoded(vec![
        record(
            "INSERT",
            &keys::reaction("s", "r"),
            Some(ddb(&ReactionItem::new(&reaction))),
            None,
        ),
        record(
            "INSERT",
            &keys::metric("s", &sample.at),
            Some(ddb(&SampleItem::new(&sample))),
            None,
        ),
    ]);
    assert_eq!(
        changes,
        [
            Change::ReactionAdded {
                reaction,
                position: format!("{:0>40}", 1)
            },
            Change::QualitySample(sample)
        ]
    );
}

#[test]
fn leases_nodes_and_other_bookkeeping_decode_to_nothing() {
    let any = Some(json!({"pk": {"S": "x"}, "sk": {"S": "y"}, "nodeId": {"S": "n1"}}));
    let changes = decoded(vec![
        record("INSERT", &keys::lease("s"), any.clone(), None),
        record("MODIFY", &keys::node("n1"), any.clone(), any.clone()),
        record("MODIFY", &keys::rate("s", "u"), any.clone(), any.clone()),
        record("INSERT", &keys::viewer("s", "c"), any.clone(), None),
        record("INSERT", &keys::vote("s", "q", "u"), any.clone(), None),
        record("REMOVE", &keys::chat("s", "m"), None, any.clone()),
    ]);
    assert_eq!(changes, []);
}

#[test]
fn a_malformed_image_is_skipped_not_half_decoded() {
    let broken = Some(json!({"id": {"S": "m"}, "content": {"N": "1"}}));
    let changes = decoded(vec![
        record("INSERT", &keys::chat("s", "m"), broken.clone(), None),
        record("MODIFY", &keys::stream("s"), broken.clone(), broken),
    ]);
    assert_eq!(changes, []);
}

#[test]
fn feed_appends_are_the_inserted_event_items_with_their_number_and_type() {
    let key = crate::keys::feed_event("s1", 7);
    let image = json!({
        "pk": {"S": key.pk}, "sk": {"S": key.sk}, "entity": {"S": "event"},
        "ttl": {"N": "1"}, "seq": {"N": "7"},
        "event": {"S": r#"{"type":"stream:chat-message","streamId":"s1","data":{"id":"m"},"ts":1}"#},
    });
    let head = crate::keys::feed_head("s1");
    let records = vec![
        record("INSERT", &key, Some(image.clone()), None),
        // A TTL removal, the head, and a chat item are not appends.
        record("REMOVE", &key, None, Some(image)),
        record("MODIFY", &head, Some(json!({"seq": {"N": "7"}})), None),
        record(
            "INSERT",
            &crate::keys::chat("s1", "m"),
            Some(json!({"pk": {"S": "x"}})),
            None,
        ),
    ];
    let event: Event = serde_json::from_value(json!({ "Records": records })).expect("event");
    assert_eq!(
        feed_appends(&event.records),
        vec![FeedAppend {
            stream_id: "s1".into(),
            seq: 7,
            kind: rill_core::event::EventType::ChatMessage,
        }]
    );
    // The fan-out's decoder sees none of them as a change of its own.
    assert!(decode(&event.records[..1]).is_empty());
}
