//! Fuzz harnesses for what clients send: WebSocket frames ([`client_frame`]) and REST JSON
//! bodies ([`rest_body`]).
//!
//! Run by the AFL++ targets `ws_frame` and `rest_body` (`fuzz/fuzz_targets/`,
//! `scripts/fuzz.sh`) and by the unit tests below. Each harness decodes the input the way
//! the functions do (the same serde types, the same validation), then asserts what the
//! domain promises:
//!
//! - nothing panics;
//! - a frame over [`MAX_FRAME_BYTES`] is refused as `frame_too_large`; every refusal has a
//!   known code and its error frame is JSON that carries that code and message;
//! - an accepted frame written back as JSON parses to the same frame;
//! - a value that passed validation passes it again unchanged (cleaning is idempotent):
//!   titles, names, descriptions and chat text are trimmed, bounded and free of control
//!   characters, channel ids and emoji are from their alphabets, positions and settings are
//!   in range;
//! - what gets stored (stream, channel, message, reaction, question) serialises to JSON that
//!   reads back as the same value, and serialising that again gives the same text (the
//!   timestamp invariant of [`crate::time`]: a value read back equals the value written).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::channel::{Channel, NewChannel};
use crate::chat::{ChatMessage, NewChatMessage, NewReaction, Reaction};
use crate::realtime::{ClientFrame, MAX_FRAME_BYTES, Question, Refusal, error_frame, parse_frame};
use crate::stream::{NewStream, Stream, StreamPatch, StreamStatus};
use crate::time::Timestamp;
use crate::validate;

/// Every code [`parse_frame`] may refuse with.
const FRAME_CODES: [&str; 4] = [
    "frame_too_large",
    "invalid_json",
    "invalid_frame",
    "unknown_action",
];

/// A fixed clock, so a crash reproduces.
fn now() -> Timestamp {
    DateTime::<Utc>::from_timestamp_millis(1_800_000_000_000).unwrap_or_default()
}

fn user() -> Principal {
    Principal {
        user_id: "user-1".into(),
        display_name: "User One".into(),
    }
}

/// A WebSocket frame body (text frames only: API Gateway hands the functions a string).
pub fn client_frame(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let frame = match parse_frame(body) {
        Ok(frame) => frame,
        Err(refusal) => {
            check_refusal(body, &refusal);
            return;
        }
    };
    assert!(body.len() <= MAX_FRAME_BYTES, "oversized frame accepted");
    let again = parse_frame(&frame_json(&frame).to_string())
        .unwrap_or_else(|r| panic!("re-written frame refused: {r}"));
    assert!(
        same_frame(&frame, &again),
        "{frame:?} came back as {again:?}"
    );
    // What the socket functions then check (ws.rs): the same rules as REST.
    match frame {
        ClientFrame::Chat { content } => {
            let input = NewChatMessage { content };
            if let Ok(m) = ChatMessage::create("m".into(), "s", &user(), &input, now()) {
                check_chat_text(&m.content);
                round_trip(&m);
            }
        }
        ClientFrame::Question { content } => {
            if let Ok(q) = Question::create("q".into(), "s", &user(), &content, now()) {
                check_chat_text(&q.content);
                round_trip(&q);
            }
        }
        ClientFrame::React {
            emoji,
            position_x,
            position_y,
        } => check_reaction(NewReaction {
            emoji,
            position_x,
            position_y,
        }),
        ClientFrame::Heartbeat(h) => {
            let r = h.report();
            assert!(r.rebuffer_ms <= crate::qoe::INTERVAL_MS_MAX);
            assert!(r.startup_ms.is_none_or(|v| v <= crate::qoe::STARTUP_MS_MAX));
            assert!(r.latency_ms.is_none_or(|v| v <= crate::qoe::LATENCY_MS_MAX));
            assert!(
                r.rendition
                    .is_none_or(|t| t.chars().count() <= crate::qoe::TEXT_MAX)
            );
            assert!(
                r.fatal_error
                    .is_none_or(|t| t.chars().count() <= crate::qoe::TEXT_MAX)
            );
        }
        ClientFrame::Ping => {}
    }
}

fn check_refusal(body: &str, refusal: &Refusal) {
    assert!(
        FRAME_CODES.contains(&refusal.code),
        "unknown refusal code {}",
        refusal.code
    );
    if body.len() > MAX_FRAME_BYTES {
        assert_eq!(refusal.code, "frame_too_large");
    }
    let frame: serde_json::Value = serde_json::from_str(&error_frame(refusal, now()))
        .unwrap_or_else(|e| panic!("error frame is not JSON: {e}"));
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["data"]["code"], refusal.code);
    assert_eq!(frame["data"]["message"], refusal.message.as_str());
}

/// The frame as a client would write it.
fn frame_json(frame: &ClientFrame) -> serde_json::Value {
    use serde_json::json;
    match frame {
        ClientFrame::Chat { content } => json!({"action": "chat", "content": content}),
        ClientFrame::Question { content } => json!({"action": "question", "content": content}),
        ClientFrame::React {
            emoji,
            position_x,
            position_y,
        } => {
            json!({"action": "react", "emoji": emoji, "positionX": position_x, "positionY": position_y})
        }
        ClientFrame::Heartbeat(h) => {
            let mut v = serde_json::to_value(h).unwrap_or_else(|e| panic!("heartbeat: {e}"));
            v["action"] = json!("heartbeat");
            v
        }
        ClientFrame::Ping => json!({"action": "ping"}),
    }
}

/// Equal, numbers within a rounding step (serde_json reads back the shortest decimal form of
/// an `f64` to within one unit in the last place).
fn same_frame(a: &ClientFrame, b: &ClientFrame) -> bool {
    match (a, b) {
        (
            ClientFrame::React {
                emoji: e1,
                position_x: x1,
                position_y: y1,
            },
            ClientFrame::React {
                emoji: e2,
                position_x: x2,
                position_y: y2,
            },
        ) => e1 == e2 && close_opt(*x1, *x2) && close_opt(*y1, *y2),
        _ => a == b,
    }
}

fn close_opt(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs())
}

fn check_chat_text(content: &str) {
    assert_eq!(
        validate::chat_content(content).as_deref(),
        Ok(content),
        "chat text is not stable under validation"
    );
}

fn check_reaction(input: NewReaction) {
    let Ok(r) = Reaction::create("r".into(), "s", &user(), &input, now()) else {
        return;
    };
    assert!(validate::REACTION_EMOJI.contains(&r.emoji.as_str()));
    for p in [r.position_x, r.position_y].into_iter().flatten() {
        assert!(p.is_finite() && (0.0..=100.0).contains(&p), "position {p}");
    }
    // Stored and fanned out as JSON: read back within a rounding step.
    let text = serde_json::to_string(&r).unwrap_or_else(|e| panic!("reaction to JSON: {e}"));
    let back: Reaction =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("reaction from JSON: {e}"));
    assert_eq!(
        (&back.id, &back.emoji, back.created_at),
        (&r.id, &r.emoji, r.created_at)
    );
    assert!(close_opt(back.position_x, r.position_x) && close_opt(back.position_y, r.position_y));
}

/// A REST request body. The first byte picks the body type; the rest is the JSON as sent:
/// 0 create stream, 1 update stream, 2 create channel, 3 chat message, 4 reaction (the
/// bodies of `POST /api/streams`, `PATCH /api/streams/{id}`, `POST /api/channels`,
/// `POST /api/streams/{id}/chat` and `POST /api/streams/{id}/reactions`).
pub fn rest_body(data: &[u8]) {
    let Some((kind, json)) = data.split_first() else {
        return;
    };
    match kind % 5 {
        0 => {
            let Some(input) = decode::<NewStream>(json) else {
                return;
            };
            let scheduled = input.scheduled_at;
            let Ok(s) = Stream::create("01STREAM".into(), "user-1".into(), input, now()) else {
                return;
            };
            let expected = match scheduled {
                Some(at) if at > now() => StreamStatus::Scheduled,
                _ => StreamStatus::Preparing,
            };
            assert_eq!(s.status, expected);
            assert_eq!(s.version, 1);
            check_stream(&s);
        }
        1 => {
            let Some(patch) = decode::<StreamPatch>(json) else {
                return;
            };
            let base = base_stream();
            let Ok(s) = base.patched(&patch, now()) else {
                return;
            };
            assert_eq!(s.version, base.version + 1);
            assert_eq!(
                (&s.id, &s.owner_id, s.status),
                (&base.id, &base.owner_id, base.status)
            );
            check_stream(&s);
        }
        2 => {
            let Some(input) = decode::<NewChannel>(json) else {
                return;
            };
            let Ok(c) = Channel::create("01CHANNEL".into(), "user-1".into(), input, now()) else {
                return;
            };
            assert_eq!(validate::channel_id(&c.id), Ok(()));
            assert_eq!(
                validate::channel_name(&c.name).as_deref(),
                Ok(c.name.as_str())
            );
            assert_eq!(
                validate::description(&c.description).as_deref(),
                Ok(c.description.as_str())
            );
            round_trip(&c);
        }
        3 => {
            let Some(input) = decode::<NewChatMessage>(json) else {
                return;
            };
            if let Ok(m) = ChatMessage::create("m".into(), "s", &user(), &input, now()) {
                check_chat_text(&m.content);
                round_trip(&m);
            }
        }
        _ => {
            if let Some(input) = decode::<NewReaction>(json) {
                check_reaction(input);
            }
        }
    }
}

/// As `rill_api::request::json_body` reads a body (after its size and type checks).
fn decode<T: DeserializeOwned>(json: &[u8]) -> Option<T> {
    serde_json::from_slice(json).ok()
}

/// A stream to patch: scheduled, with every optional field set.
fn base_stream() -> Stream {
    let input: NewStream = serde_json::from_value(serde_json::json!({
        "channelId": "chan-1",
        "title": "Base",
        "description": "A stream to patch",
        "scheduledAt": "2027-01-20T10:00:00.000Z",
        "thumbnailUrl": "https://example.com/t.jpg",
        "settings": {"maxBitrateKbps": 3000, "slowModeSeconds": 5},
    }))
    .unwrap_or_else(|e| panic!("base stream body: {e}"));
    Stream::create("01STREAM".into(), "user-1".into(), input, now())
        .unwrap_or_else(|e| panic!("base stream: {e}"))
}

/// What every stored stream satisfies.
fn check_stream(s: &Stream) {
    assert_eq!(validate::title(&s.title).as_deref(), Ok(s.title.as_str()));
    assert_eq!(
        validate::description(&s.description).as_deref(),
        Ok(s.description.as_str())
    );
    assert_eq!(validate::channel_id(&s.channel_id), Ok(()));
    if let Some(url) = &s.thumbnail_url {
        assert_eq!(validate::thumbnail_url(url), Ok(()));
    }
    assert_eq!(validate::settings(&s.settings), Ok(()));
    round_trip(s);
}

/// Serialised as stored or sent, read back equal; serialising again gives the same text.
fn round_trip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(value).unwrap_or_else(|e| panic!("to JSON: {e}"));
    let back: T = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{value:?} does not read back from {text}: {e}"));
    assert_eq!(&back, value, "read back differently from {text}");
    let again = serde_json::to_string(&back).unwrap_or_else(|e| panic!("to JSON: {e}"));
    assert_eq!(again, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds of `fuzz/corpus/ws_frame` and `fuzz/corpus/rest_body` in spirit: valid
    /// bodies of every kind go through the harness (and reach its checks).
    #[test]
    fn valid_frames_and_bodies_pass_the_harnesses() {
        for frame in [
            r#"{"action":"chat","content":"  hello  "}"#,
            r#"{"action":"question","content":"why?"}"#,
            r#"{"action":"react","emoji":"🔥","positionX":12.5,"positionY":99.9}"#,
            r#"{"action":"heartbeat","quality":"720p","buffering":120}"#,
            r#"{"action":"ping"}"#,
            r#"{"action":"dance"}"#,
            r#"{"action":"chat"}"#,
            "not json",
        ] {
            client_frame(frame.as_bytes());
        }
        for (kind, body) in [
            (
                0u8,
                r#"{"channelId":"c","title":" T ","scheduledAt":"2027-01-01T00:00:00Z"}"#,
            ),
            (
                1,
                r#"{"title":"New","thumbnailUrl":null,"settings":{"quality":"720p","chatMode":"followers"}}"#,
            ),
            (2, r#"{"id":"my-channel","name":"Mine"}"#),
            (3, r#"{"content":"hi\n"}"#),
            (4, r#"{"emoji":"👏","positionX":0,"positionY":100}"#),
        ] {
            let mut data = vec![kind];
            data.extend_from_slice(body.as_bytes());
            rest_body(&data);
        }
    }

    #[test]
    fn oversized_frames_are_refused_by_size() {
        let big = format!(
            r#"{{"action":"chat","content":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        client_frame(big.as_bytes());
    }
}
