//! Realtime: WebSocket frames, connections, moderation rules, rate limits and Q&A.
//!
//! Pure rules only: whether a user may chat ([`chat_permission`]), how the per-user token
//! bucket and slow mode advance ([`Bucket::take`]), what clients may send ([`ClientFrame`])
//! and the error frame they get back ([`error_frame`]). Stores persist the state; the
//! functions apply these rules before anything is written or sent.

use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::channel::{self, ChannelRole};
use crate::stream::{ChatMode, Stream};
use crate::time::{Timestamp, rfc3339_millis};

/// Largest frame a client may send (API Gateway's WebSocket frame limit).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// One open WebSocket connection to a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub connection_id: String,
    pub stream_id: String,
    /// `None` for anonymous viewers.
    pub user_id: Option<String>,
    pub display_name: Option<String>,
    #[serde(with = "rfc3339_millis")]
    pub connected_at: Timestamp,
    /// Whether this connection counts as a viewer. The stream owner's own socket (the
    /// broadcaster page) receives events but is not an audience member.
    #[serde(default = "counted_by_default")]
    pub counted: bool,
    /// Where the viewer is: CloudFront's `CloudFront-Viewer-Country` on the `$connect`
    /// request (ISO 3166 alpha-2), when it came through CloudFront. For analytics only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The `$connect` request's `User-Agent`, cut to [`USER_AGENT_MAX`] characters. For
    /// analytics only (parsed off the request path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// The longest user agent kept on a connection.
pub const USER_AGENT_MAX: usize = 256;

fn counted_by_default() -> bool {
    true
}

/// API Gateway closes a WebSocket after two hours, so no view lasts longer.
pub const MAX_CONNECTION_AGE: chrono::Duration = chrono::Duration::hours(2);

/// A view that ended: its connection, and when it was seen gone (when `events-presence`
/// read the listing's removal from the table stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedView {
    pub connection: Connection,
    pub ended_at: Timestamp,
}

impl EndedView {
    /// When the view ended, never before it began nor past the longest a socket lives
    /// (a listing swept by its TTL is removed long after its socket closed).
    pub fn ended(&self) -> Timestamp {
        let started = self.connection.connected_at;
        self.ended_at.clamp(started, started + MAX_CONNECTION_AGE)
    }

    pub fn watch_ms(&self) -> i64 {
        (self.ended() - self.connection.connected_at).num_milliseconds()
    }
}

impl Connection {
    pub fn principal(&self) -> Option<Principal> {
        self.user_id.as_ref().map(|u| Principal {
            user_id: u.clone(),
            display_name: self.display_name.clone().unwrap_or_else(|| u.clone()),
        })
    }
}

/// What a client sends, routed on `action`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientFrame {
    Chat {
        content: String,
    },
    React {
        emoji: String,
        #[serde(rename = "positionX")]
        position_x: Option<f64>,
        #[serde(rename = "positionY")]
        position_y: Option<f64>,
    },
    Question {
        content: String,
    },
    /// The player's playback report ([`crate::qoe`]).
    Heartbeat(crate::qoe::HeartbeatFrame),
    Ping,
}

/// Why a frame or action was refused; `code` is stable for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// The error frame sent to one connection only:
/// `{"type":"error","data":{"code":"...","message":"..."},"ts":...}`.
pub fn error_frame(refusal: &Refusal, at: Timestamp) -> String {
    serde_json::json!({
        "type": "error",
        "data": {"code": refusal.code, "message": refusal.message},
        "ts": at.timestamp_millis(),
    })
    .to_string()
}

/// Parses a client frame; every failure is a refusal with a code the client can act on.
pub fn parse_frame(body: &str) -> Result<ClientFrame, Refusal> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(Refusal::new(
            "frame_too_large",
            "frames are limited to 32 KiB",
        ));
    }
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|_| Refusal::new("invalid_json", "frames must be JSON objects"))?;
    let action = value
        .get("action")
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    match action.as_deref() {
        None => Err(Refusal::new(
            "invalid_frame",
            "frames need a string \"action\"",
        )),
        Some("chat" | "react" | "question" | "heartbeat" | "ping") => {
            serde_json::from_value(value).map_err(|e| Refusal::new("invalid_frame", e.to_string()))
        }
        Some(other) => Err(Refusal::new(
            "unknown_action",
            format!("unknown action {other:?}"),
        )),
    }
}

/// Standing of a user in a stream, as loaded by the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Owns the stream.
    pub is_owner: bool,
    /// Moderates this stream (granted on the stream by its owner).
    pub is_moderator: bool,
    pub is_banned: bool,
    /// Role in the stream's channel, if any (`crate::channel`).
    pub channel_role: Option<ChannelRole>,
}

impl Standing {
    /// The stream's owner, its moderators and the channel's moderators (and those above
    /// them) moderate; they are never held back by chat mode or slow mode.
    pub fn moderates(&self) -> bool {
        self.is_owner || self.is_moderator || channel::moderates(self.channel_role)
    }

    /// May see the stream at all (its visibility). The stream's own moderators, whom its
    /// owner chose, see it too.
    pub fn views(&self, stream: &Stream) -> bool {
        self.is_moderator || channel::may_view(stream.visibility, self.is_owner, self.channel_role)
    }

    /// Passes a `followers` chat: any role in the channel.
    pub fn follows(&self) -> bool {
        self.channel_role.is_some()
    }

    /// Passes a `subscribers` chat: subscriber or above.
    pub fn subscribes(&self) -> bool {
        self.channel_role >= Some(ChannelRole::Subscriber)
    }

    /// Who outranks whom in a stream, for bans: the channel's owner (3) over the stream's
    /// owner (2) over moderators (1) over everyone else (0).
    pub fn rank(&self) -> u8 {
        if self.channel_role == Some(ChannelRole::Owner) {
            3
        } else if self.is_owner {
            2
        } else if self.moderates() {
            1
        } else {
            0
        }
    }

    /// May a user of this standing ban one of `target`'s? Only moderators may ban, and only
    /// those they strictly outrank (so moderators cannot ban each other, nor anyone the
    /// owners).
    pub fn may_ban(&self, target: &Standing) -> bool {
        self.rank() >= 1 && self.rank() > target.rank()
    }
}

/// May this user post in this stream's chat now (ignoring rate limits)?
pub fn chat_permission(
    stream: &Stream,
    user: Option<&Principal>,
    standing: &Standing,
) -> Result<(), Refusal> {
    if stream.status.is_final() {
        return Err(Refusal::new(
            "stream_over",
            format!("chat is closed: the stream is {}", stream.status),
        ));
    }
    if user.is_none() {
        return Err(Refusal::new("unauthorized", "sign in to chat"));
    }
    if !standing.views(stream) {
        return Err(Refusal::new("not_found", "stream not found"));
    }
    if standing.is_banned {
        return Err(Refusal::new("banned", "you are banned from this chat"));
    }
    if standing.moderates() {
        return Ok(());
    }
    if !stream.settings.chat_enabled {
        return Err(Refusal::new(
            "chat_disabled",
            "chat is turned off for this stream",
        ));
    }
    match stream.settings.chat_mode {
        ChatMode::Open => Ok(()),
        ChatMode::Followers if standing.follows() => Ok(()),
        ChatMode::Subscribers if standing.subscribes() => Ok(()),
        mode => Err(Refusal::new(
            "chat_restricted",
            format!(
                "chat is limited to {}",
                if mode == ChatMode::Followers {
                    "followers"
                } else {
                    "subscribers"
                }
            ),
        )),
    }
}

/// Per-user message budget: a token bucket (default 1 message/s, burst 3) plus slow mode
/// (a minimum gap between one user's messages). Stored per user and stream; updated with a
/// conditional write on `updated_ms` so two concurrent messages cannot both spend the same
/// token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub tokens: f64,
    /// When `tokens` was computed (ms since epoch).
    pub updated_ms: i64,
    /// When the user's last message was accepted (ms since epoch).
    pub last_message_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 1.0,
            burst: 3.0,
        }
    }
}

impl Bucket {
    pub fn full(limit: &RateLimit) -> Bucket {
        Bucket {
            tokens: limit.burst,
            updated_ms: 0,
            last_message_ms: 0,
        }
    }

    /// Spends one token at `now_ms`, or says how long to wait.
    pub fn take(
        &self,
        limit: &RateLimit,
        slow_mode_seconds: u32,
        now_ms: i64,
    ) -> Result<Bucket, Refusal> {
        let since_last = now_ms - self.last_message_ms;
        let slow_ms = i64::from(slow_mode_seconds) * 1000;
        if slow_ms > 0 && since_last < slow_ms {
            let wait = (slow_ms - since_last + 999) / 1000;
            return Err(Refusal::new(
                "slow_mode",
                format!("slow mode: wait {wait} s before your next message"),
            ));
        }
        let elapsed = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        let tokens = (self.tokens + elapsed * limit.per_second).min(limit.burst);
        if tokens < 1.0 {
            return Err(Refusal::new("rate_limited", "too many messages: slow down"));
        }
        Ok(Bucket {
            tokens: tokens - 1.0,
            updated_ms: now_ms,
            last_message_ms: now_ms,
        })
    }
}

/// A Q&A question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    pub id: String,
    pub stream_id: String,
    pub author_id: String,
    pub author_name: String,
    pub content: String,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
    pub upvotes: u64,
    pub answered: bool,
}

impl Question {
    pub fn create(
        id: String,
        stream_id: &str,
        author: &Principal,
        content: &str,
        now: Timestamp,
    ) -> Result<Question, crate::ValidationError> {
        Ok(Question {
            id,
            stream_id: stream_id.to_owned(),
            author_id: author.user_id.clone(),
            author_name: author.display_name.clone(),
            content: crate::validate::chat_content(content)?,
            created_at: now,
            upvotes: 0,
            answered: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{NewStream, StreamStatus};

    #[test]
    fn an_ended_view_lasts_from_connect_to_its_end_within_a_sockets_lifetime() {
        let connected_at = crate::time::now();
        let view = |ended_at| EndedView {
            connection: Connection {
                connection_id: "c".into(),
                stream_id: "s".into(),
                user_id: None,
                display_name: None,
                connected_at,
                counted: true,
                country: None,
                user_agent: None,
            },
            ended_at,
        };
        let secs = chrono::Duration::seconds;
        assert_eq!(view(connected_at + secs(90)).watch_ms(), 90_000);
        // Clocks differ between machines: a view is never negative.
        assert_eq!(view(connected_at - secs(1)).watch_ms(), 0);
        // Swept by the TTL hours later: at most what API Gateway lets a socket live.
        assert_eq!(
            view(connected_at + chrono::Duration::hours(30)).watch_ms(),
            MAX_CONNECTION_AGE.num_milliseconds()
        );
    }

    fn stream(mode: ChatMode) -> Stream {
        let input: NewStream =
            serde_json::from_value(serde_json::json!({"channelId":"c","title":"t"})).unwrap();
        let mut s = Stream::create(
            crate::ids::new_id(),
            "owner".into(),
            input,
            crate::time::now(),
        )
        .unwrap();
        s.settings.chat_mode = mode;
        s
    }

    fn user() -> Principal {
        Principal {
            user_id: "u".into(),
            display_name: "U".into(),
        }
    }

    #[test]
    fn frames_parse_by_action_and_bad_frames_are_refused_with_a_code() {
        assert_eq!(
            parse_frame(r#"{"action":"chat","content":"hi"}"#).unwrap(),
            ClientFrame::Chat {
                content: "hi".into()
            }
        );
        assert_eq!(
            parse_frame(r#"{"action":"ping"}"#).unwrap(),
            ClientFrame::Ping
        );
        assert!(matches!(
            parse_frame(r#"{"action":"react","emoji":"🔥","positionX":3}"#).unwrap(),
            ClientFrame::React {
                position_x: Some(_),
                position_y: None,
                ..
            }
        ));
        let code = |b: &str| parse_frame(b).unwrap_err().code;
        assert_eq!(code("not json"), "invalid_json");
        assert_eq!(code("[1]"), "invalid_frame");
        assert_eq!(code(r#"{"content":"hi"}"#), "invalid_frame");
        assert_eq!(code(r#"{"action":"dance"}"#), "unknown_action");
        assert_eq!(code(r#"{"action":"chat"}"#), "invalid_frame");
        assert_eq!(
            code(r#"{"action":"chat","content":"hi","admin":true}"#),
            "invalid_frame"
        );
        assert_eq!(
            code(&format!(
                r#"{{"action":"chat","content":"{}"}}"#,
                "x".repeat(33_000)
            )),
            "frame_too_large"
        );
    }

    #[test]
    fn error_frames_have_the_event_shape() {
        let f: serde_json::Value = serde_json::from_str(&error_frame(
            &Refusal::new("banned", "no"),
            crate::time::now(),
        ))
        .unwrap();
        assert_eq!(f["type"], "error");
        assert_eq!(f["data"]["code"], "banned");
        assert!(f["ts"].is_i64());
    }

    #[test]
    fn chat_modes_admit_the_right_people() {
        let u = user();
        let open = stream(ChatMode::Open);
        assert!(chat_permission(&open, Some(&u), &Standing::default()).is_ok());
        assert_eq!(
            chat_permission(&open, None, &Standing::default())
                .unwrap_err()
                .code,
            "unauthorized"
        );
        let followers = stream(ChatMode::Followers);
        assert_eq!(
            chat_permission(&followers, Some(&u), &Standing::default())
                .unwrap_err()
                .code,
            "chat_restricted"
        );
        assert!(
            chat_permission(
                &followers,
                Some(&u),
                &Standing {
                    channel_role: Some(ChannelRole::Follower),
                    ..Default::default()
                }
            )
            .is_ok()
        );
        assert!(
            chat_permission(
                &followers,
                Some(&u),
                &Standing {
                    channel_role: Some(ChannelRole::Subscriber),
                    ..Default::default()
                }
            )
            .is_ok()
        );
        let subs = stream(ChatMode::Subscribers);
        assert!(
            chat_permission(
                &subs,
                Some(&u),
                &Standing {
                    channel_role: Some(ChannelRole::Follower),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            chat_permission(
                &subs,
                Some(&u),
                &Standing {
                    channel_role: Some(ChannelRole::Subscriber),
                    ..Default::default()
                }
            )
            .is_ok()
        );
        assert!(
            chat_permission(
                &subs,
                Some(&u),
                &Standing {
                    is_moderator: true,
                    ..Default::default()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn bans_go_down_the_ranks_only() {
        let role = |r| Standing {
            channel_role: Some(r),
            ..Default::default()
        };
        let channel_owner = role(ChannelRole::Owner);
        let stream_owner = Standing {
            is_owner: true,
            channel_role: Some(ChannelRole::Broadcaster),
            ..Default::default()
        };
        let stream_mod = Standing {
            is_moderator: true,
            ..Default::default()
        };
        let channel_mod = role(ChannelRole::Moderator);
        let viewer = role(ChannelRole::Subscriber);
        assert!(channel_owner.may_ban(&stream_owner));
        assert!(stream_owner.may_ban(&channel_mod) && stream_owner.may_ban(&stream_mod));
        assert!(!stream_owner.may_ban(&channel_owner));
        assert!(channel_mod.may_ban(&viewer) && stream_mod.may_ban(&viewer));
        assert!(!channel_mod.may_ban(&stream_mod) && !stream_mod.may_ban(&channel_mod));
        assert!(!viewer.may_ban(&Standing::default()));
        // A broadcaster who does not own this stream moderates it, as a moderator.
        assert!(role(ChannelRole::Broadcaster).moderates());
        assert!(!role(ChannelRole::Broadcaster).may_ban(&channel_mod));
    }

    #[test]
    fn bans_and_closed_chats_beat_everything_but_the_end_beats_all() {
        let u = user();
        let mut s = stream(ChatMode::Open);
        let banned = Standing {
            is_banned: true,
            channel_role: Some(ChannelRole::Subscriber),
            ..Default::default()
        };
        assert_eq!(
            chat_permission(&s, Some(&u), &banned).unwrap_err().code,
            "banned"
        );
        s.settings.chat_enabled = false;
        assert_eq!(
            chat_permission(&s, Some(&u), &Standing::default())
                .unwrap_err()
                .code,
            "chat_disabled"
        );
        assert!(
            chat_permission(
                &s,
                Some(&u),
                &Standing {
                    is_owner: true,
                    ..Default::default()
                }
            )
            .is_ok()
        );
        s.status = StreamStatus::Ended;
        assert_eq!(
            chat_permission(
                &s,
                Some(&u),
                &Standing {
                    is_owner: true,
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code,
            "stream_over"
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_of_three_then_one_per_second() {
        let limit = RateLimit::default();
        let mut b = Bucket::full(&limit);
        let t0 = 1_000_000;
        for i in 0..3 {
            b = b.take(&limit, 0, t0 + i).unwrap();
        }
        assert_eq!(b.take(&limit, 0, t0 + 3).unwrap_err().code, "rate_limited");
        assert!(b.take(&limit, 0, t0 + 500).is_err());
        b = b.take(&limit, 0, t0 + 1_010).unwrap();
        assert!(b.take(&limit, 0, t0 + 1_020).is_err());
        assert!(b.take(&limit, 0, t0 + 10_000).is_ok());
    }

    #[test]
    fn slow_mode_spaces_one_users_messages() {
        let limit = RateLimit::default();
        let b = Bucket::full(&limit).take(&limit, 5, 10_000).unwrap();
        let e = b.take(&limit, 5, 12_000).unwrap_err();
        assert_eq!(e.code, "slow_mode");
        assert!(e.message.contains("3 s"));
        assert!(b.take(&limit, 5, 15_000).is_ok());
    }
}
