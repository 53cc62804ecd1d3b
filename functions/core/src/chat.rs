//! Chat messages and reactions.

use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::time::{Timestamp, rfc3339_millis};
use crate::validate::{self, ValidationError};

/// A chat message. Deleted messages keep their id (so pins and moderation logs stay
/// consistent) but lose their content and are never listed or delivered again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub stream_id: String,
    pub author_id: String,
    pub author_name: String,
    pub content: String,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
    pub is_pinned: bool,
    pub deleted: bool,
}

/// Body of a chat send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChatMessage {
    pub content: String,
}

impl ChatMessage {
    pub fn create(
        id: String,
        stream_id: &str,
        author: &Principal,
        input: &NewChatMessage,
        now: Timestamp,
    ) -> Result<ChatMessage, ValidationError> {
        Ok(ChatMessage {
            id,
            stream_id: stream_id.to_owned(),
            author_id: author.user_id.clone(),
            author_name: author.display_name.clone(),
            content: validate::chat_content(&input.content)?,
            created_at: now,
            is_pinned: false,
            deleted: false,
        })
    }

    /// Owner of the stream or author of the message.
    pub fn may_be_deleted_by(&self, user_id: &str, stream_owner_id: &str) -> bool {
        self.author_id == user_id || stream_owner_id == user_id
    }
}

/// A reaction. Stored with a TTL: reactions matter live and as counts, not forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    pub id: String,
    pub stream_id: String,
    pub user_id: String,
    pub emoji: String,
    pub position_x: Option<f64>,
    pub position_y: Option<f64>,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
}

/// Body of a reaction send.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewReaction {
    pub emoji: String,
    pub position_x: Option<f64>,
    pub position_y: Option<f64>,
}

impl Reaction {
    pub fn create(
        id: String,
        stream_id: &str,
        user: &Principal,
        input: &NewReaction,
        now: Timestamp,
    ) -> Result<Reaction, ValidationError> {
        validate::emoji(&input.emoji)?;
        if let Some(x) = input.position_x {
            validate::position("positionX", x)?;
        }
        if let Some(y) = input.position_y {
            validate::position("positionY", y)?;
        }
        Ok(Reaction {
            id,
            stream_id: stream_id.to_owned(),
            user_id: user.user_id.clone(),
            emoji: input.emoji.clone(),
            position_x: input.position_x,
            position_y: input.position_y,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            user_id: "alice".into(),
            display_name: "Alice".into(),
        }
    }

    #[test]
    fn a_message_takes_its_author_from_the_principal() {
        let m = ChatMessage::create(
            "m".into(),
            "s",
            &alice(),
            &NewChatMessage {
                content: " hi ".into(),
            },
            chrono::Utc::now(),
        )
        .expect("valid");
        assert_eq!(
            (
                m.author_id.as_str(),
                m.author_name.as_str(),
                m.content.as_str()
            ),
            ("alice", "Alice", "hi")
        );
        assert!(!m.is_pinned && !m.deleted);
    }

    #[test]
    fn only_author_or_owner_may_delete() {
        let m = ChatMessage::create(
            "m".into(),
            "s",
            &alice(),
            &NewChatMessage {
                content: "x".into(),
            },
            chrono::Utc::now(),
        )
        .expect("valid");
        assert!(m.may_be_deleted_by("alice", "bob"));
        assert!(m.may_be_deleted_by("bob", "bob"));
        assert!(!m.may_be_deleted_by("carol", "bob"));
    }

    #[test]
    fn reactions_are_validated() {
        let ok = NewReaction {
            emoji: "🔥".into(),
            position_x: Some(10.0),
            position_y: None,
        };
        assert!(Reaction::create("r".into(), "s", &alice(), &ok, chrono::Utc::now()).is_ok());
        let bad = NewReaction {
            emoji: "🔥".into(),
            position_x: Some(101.0),
            position_y: None,
        };
        assert_eq!(
            Reaction::create("r".into(), "s", &alice(), &bad, chrono::Utc::now())
                .unwrap_err()
                .field,
            "positionX"
        );
        let bad = NewReaction {
            emoji: "💩".into(),
            position_x: None,
            position_y: None,
        };
        assert_eq!(
            Reaction::create("r".into(), "s", &alice(), &bad, chrono::Utc::now())
                .unwrap_err()
                .field,
            "emoji"
        );
    }
}
