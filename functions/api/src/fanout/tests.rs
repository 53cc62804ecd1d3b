//! The fan-out's plan, fed decoded changes (decoding itself is tested in `rill_aws::changes`).

use rill_core::chat::ChatMessage;
use rill_core::quality::QualitySample;
use rill_core::realtime::Question;
use rill_core::stream::{NewStream, Stream, StreamStatus};

use super::*;

fn stream(status: StreamStatus) -> Stream {
    let input: NewStream =
        serde_json::from_value(json!({"channelId": "ch", "title": "t"})).expect("input");
    let mut s = Stream::create("a".into(), "owner".into(), input, time::now()).expect("valid");
    s.status = status;
    s
}

fn message(id: &str) -> ChatMessage {
    ChatMessage {
        id: id.into(),
        stream_id: "a".into(),
        author_id: "u".into(),
        author_name: "U".into(),
        content: id.into(),
        created_at: time::now(),
        is_pinned: false,
        deleted: false,
    }
}

fn question(id: &str) -> Question {
    Question {
        id: id.into(),
        stream_id: "a".into(),
        author_id: "u".into(),
        author_name: "U".into(),
        content: "?".into(),
        created_at: time::now(),
        upvotes: 0,
        answered: false,
    }
}

/// Changes as one batch delivers them: positions in record order.
fn positioned(changes: Vec<Change>) -> Vec<(String, Change)> {
    changes
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("{i:0>40}"), c))
        .collect()
}

/// What the sockets get.
fn kinds(batch: &StreamBatch) -> Vec<EventType> {
    delivered(batch).iter().map(|p| p.kind).collect()
}

fn delivered(batch: &StreamBatch) -> Vec<&Planned> {
    batch.events.iter().filter(|p| p.deliver).collect()
}

/// What the feed gets, with positions.
fn fed(batch: &StreamBatch) -> Vec<(&str, EventType)> {
    batch
        .events
        .iter()
        .map(|p| (p.position.as_str(), p.kind))
        .collect()
}

#[test]
fn reactions_are_coalesced_per_stream_and_counted_once_per_batch() {
    let mut changes = Vec::new();
    for i in 0..50 {
        changes.push(Change::ReactionAdded {
            position: format!("{i:0>40}"),
            reaction: Reaction {
                id: i.to_string(),
                stream_id: "a".into(),
                user_id: "u".into(),
                emoji: if i % 2 == 0 { "🔥" } else { "👏" }.into(),
                position_x: Some(1.0),
                position_y: None,
                created_at: time::now(),
            },
        });
    }
    // Presence is not this function's.
    changes.push(Change::ViewerJoined {
        connection: rill_core::realtime::Connection {
            connection_id: "c".into(),
            stream_id: "a".into(),
            user_id: None,
            display_name: None,
            connected_at: time::now(),
            counted: true,
            country: None,
            user_agent: None,
        },
        position: "0".into(),
    });
    let plan = plan(positioned(changes));
    let a = &plan["a"];
    assert_eq!(a.reactions.len(), 50);
    assert_eq!(
        a.reactions_at.as_deref(),
        Some(format!("{:0>40}", 49).as_str()),
        "the last position"
    );
    // One event: the coalesced reactions, after every change of the batch (the join's
    // included), so the feed's positions stay in order. A join is no event here.
    assert_eq!(
        fed(a),
        [(format!("{:0>40}~", 50).as_str(), EventType::Reaction)]
    );
    let frame = reaction_frame(&a.reactions);
    assert_eq!(a.events[0].data, frame);
    assert_eq!(frame["total"], 50);
    assert_eq!(frame["counts"]["🔥"], 25);
    assert_eq!(frame["samples"].as_array().unwrap().len(), REACTION_SAMPLES);
    assert_eq!(frame["samples"][0]["positionX"], 1.0);
}

#[test]
fn socket_born_messages_and_questions_are_not_sent_twice_but_are_fed() {
    let rest = message("from-rest");
    let plan = plan(positioned(vec![
        Change::ChatPosted {
            message: message("from-socket"),
            origin: Origin::Socket,
        },
        Change::ChatPosted {
            message: rest.clone(),
            origin: Origin::Rest,
        },
        Change::QuestionAsked {
            question: question("q-socket"),
            origin: Origin::Socket,
        },
        // A vote on a socket-born question is news nobody has had yet.
        Change::QuestionChanged(question("q-socket")),
        Change::ChatDeleted {
            stream_id: "a".into(),
            message_id: "from-rest".into(),
        },
    ]));
    let a = &plan["a"];
    let all: Vec<EventType> = fed(a).into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        all,
        [
            EventType::ChatMessage,
            EventType::ChatMessage,
            EventType::Question,
            EventType::Question,
            EventType::ChatDeleted
        ],
        "the feed has every event, in change order"
    );
    let a_delivered = delivered(a);
    assert_eq!(
        kinds(a),
        [
            EventType::ChatMessage,
            EventType::Question,
            EventType::ChatDeleted
        ]
    );
    assert_eq!(a_delivered[0].data, serde_json::to_value(&rest).unwrap());
    assert_eq!(a_delivered[1].data["question"]["id"], "q-socket");
    assert_eq!(a_delivered[2].data, json!({"messageId": "from-rest"}));
}

#[test]
fn stream_start_payload_has_no_secrets_and_is_the_public_stream() {
    let live = stream(StreamStatus::Live);
    let ended = stream(StreamStatus::Ended);
    let plan = plan(positioned(vec![
        Change::StreamStarted(live.clone()),
        Change::StreamEnded(ended.clone()),
    ]));
    let a = &plan["a"];
    assert_eq!(kinds(a), [EventType::Start, EventType::End]);
    // Exactly what `GET /api/streams/{id}` returns: the client swaps it in as is.
    assert_eq!(
        a.events[0].data,
        json!({"stream": serde_json::to_value(&live).unwrap()})
    );
    assert_eq!(a.events[1].data["stream"]["status"], "ended");
    for Planned { data, .. } in &a.events {
        let text = data.to_string();
        for secret in ["keyHash", "streamKey", "gsi1pk", "\"pk\"", "ttl", "origin"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(data["stream"]["stats"].is_object());
    }
}

#[test]
fn pins_and_quality_samples_become_their_events() {
    let sample = QualitySample {
        stream_id: "a".into(),
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
    let plan = plan(positioned(vec![
        Change::MessagePinned {
            stream_id: "a".into(),
            message_id: "m".into(),
        },
        Change::QualitySample(sample.clone()),
    ]));
    let a = &plan["a"];
    assert_eq!(kinds(a), [EventType::ChatPinned, EventType::QualityUpdate]);
    assert_eq!(a.events[0].data, json!({"messageId": "m"}));
    assert_eq!(a.events[1].data, serde_json::to_value(&sample).unwrap());
}
