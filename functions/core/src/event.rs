//! Realtime events: one envelope, the reference names. Every producer (REST functions,
//! WebSocket functions, the ingest node) builds events here so that clients see one schema:
//! `{"type": "stream:chat-message", "streamId": "...", "data": {...}, "ts": 1732400000000}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "stream:start")]
    Start,
    #[serde(rename = "stream:end")]
    End,
    #[serde(rename = "stream:quality-update")]
    QualityUpdate,
    #[serde(rename = "stream:viewer-joined")]
    ViewerJoined,
    #[serde(rename = "stream:viewer-left")]
    ViewerLeft,
    #[serde(rename = "stream:viewer-count")]
    ViewerCount,
    #[serde(rename = "stream:chat-message")]
    ChatMessage,
    #[serde(rename = "stream:chat-deleted")]
    ChatDeleted,
    #[serde(rename = "stream:chat-pinned")]
    ChatPinned,
    #[serde(rename = "stream:reaction")]
    Reaction,
    #[serde(rename = "stream:question")]
    Question,
}

/// What goes over the wire to a viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub stream_id: String,
    pub data: serde_json::Value,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
}

impl Event {
    pub fn new(
        kind: EventType,
        stream_id: &str,
        data: serde_json::Value,
        at: crate::time::Timestamp,
    ) -> Event {
        Event {
            kind,
            stream_id: stream_id.to_owned(),
            data,
            ts: at.timestamp_millis(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_use_the_reference_names() {
        let e = Event::new(
            EventType::ChatMessage,
            "s1",
            serde_json::json!({"content":"hi"}),
            chrono::Utc::now(),
        );
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["type"], "stream:chat-message");
        assert_eq!(v["streamId"], "s1");
        let names: Vec<String> = [
            EventType::Start,
            EventType::End,
            EventType::QualityUpdate,
            EventType::ViewerJoined,
            EventType::ViewerLeft,
            EventType::ViewerCount,
            EventType::ChatMessage,
            EventType::ChatDeleted,
            EventType::ChatPinned,
            EventType::Reaction,
        ]
        .iter()
        .map(|t| {
            serde_json::to_value(t)
                .expect("json")
                .as_str()
                .expect("str")
                .to_owned()
        })
        .collect();
        assert_eq!(
            names,
            [
                "stream:start",
                "stream:end",
                "stream:quality-update",
                "stream:viewer-joined",
                "stream:viewer-left",
                "stream:viewer-count",
                "stream:chat-message",
                "stream:chat-deleted",
                "stream:chat-pinned",
                "stream:reaction"
            ]
        );
    }
}
