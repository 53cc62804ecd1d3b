//! Streams: what they are, how their status moves, what the owner may change.

use serde::{Deserialize, Serialize};

use crate::time::{Timestamp, rfc3339_millis};
use crate::validate::{self, ValidationError};

/// Lifecycle of a stream. See [`StreamStatus::next`] for the legal moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    Scheduled,
    Preparing,
    Live,
    Ended,
    Cancelled,
}

/// Something that asks a stream to change status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Owner (or an early publisher) opens the stream for ingest.
    Start,
    /// The ingest node stored the first segment of every rendition.
    GoLive,
    /// Owner, broadcaster hang-up or node shutdown ends the stream.
    End,
    /// Owner calls off a stream that never went live.
    Cancel,
}

/// Outcome of applying a [`Command`] to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move to this status (the store must write it conditionally on the old one).
    To(StreamStatus),
    /// Already there; nothing to write (`start` on a `preparing` stream).
    Unchanged,
}

/// The command is not allowed in the current status (HTTP 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {command:?} a stream that is {from}")]
pub struct IllegalTransition {
    pub from: StreamStatus,
    pub command: Command,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Preparing => "preparing",
            Self::Live => "live",
            Self::Ended => "ended",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state machine. Every legal move is listed; anything else is an error.
    pub fn next(self, command: Command) -> Result<Transition, IllegalTransition> {
        use Command::*;
        use StreamStatus::*;
        let to = match (self, command) {
            (Scheduled, Start) => Preparing,
            (Preparing, Start) => return Ok(Transition::Unchanged),
            (Preparing, GoLive) => Live,
            (Preparing | Live, End) => Ended,
            (Scheduled | Preparing, Cancel) => Cancelled,
            (from, command) => return Err(IllegalTransition { from, command }),
        };
        Ok(Transition::To(to))
    }

    /// Statuses from which `command` is legal. Stores put these in the condition of the
    /// write, so the check and the write are one atomic step.
    pub fn sources(command: Command) -> Vec<StreamStatus> {
        ALL.into_iter()
            .filter(|s| matches!(s.next(command), Ok(Transition::To(_))))
            .collect()
    }

    /// An ingest node may accept media for the stream (a reconnect while live included).
    pub fn accepts_ingest(self) -> bool {
        matches!(self, Self::Scheduled | Self::Preparing | Self::Live)
    }

    /// Over: no further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ended | Self::Cancelled)
    }
}

impl std::fmt::Display for StreamStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const ALL: [StreamStatus; 5] = [
    StreamStatus::Scheduled,
    StreamStatus::Preparing,
    StreamStatus::Live,
    StreamStatus::Ended,
    StreamStatus::Cancelled,
];

/// Top rung of the transcoding ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum QualityPreset {
    #[default]
    #[serde(rename = "1080p")]
    P1080,
    #[serde(rename = "720p")]
    P720,
    #[serde(rename = "480p")]
    P480,
    #[serde(rename = "360p")]
    P360,
}

/// Who may chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChatMode {
    /// Any signed-in user.
    #[default]
    Open,
    /// Followers of the channel (membership managed by the realtime work).
    Followers,
    /// Subscribers of the channel (membership managed by the realtime work).
    Subscribers,
}

/// Who may find and watch a stream (`crate::channel::may_view` decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed and playable by anyone.
    #[default]
    Public,
    /// Playable by anyone with its id (a link), listed only to its channel's owner,
    /// moderators and broadcasters, and to its own owner.
    Unlisted,
    /// Only the stream's owner and the channel's members (subscriber and above) find,
    /// watch, join or chat in it; to anyone else it does not exist (404).
    Members,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Members => "members",
        }
    }
}

/// Per-stream settings, always complete once stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub quality: QualityPreset,
    /// Upper bound on the top rung's bitrate; `None` means the preset's own.
    pub max_bitrate_kbps: Option<u32>,
    pub chat_enabled: bool,
    pub reactions_enabled: bool,
    pub chat_mode: ChatMode,
    pub slow_mode_seconds: u32,
    /// Whom to tell when it goes live and before `scheduledAt` (absent in items written
    /// before it existed: the defaults).
    #[serde(default)]
    pub notifications: crate::notification::NotificationSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            quality: QualityPreset::default(),
            max_bitrate_kbps: None,
            chat_enabled: true,
            reactions_enabled: true,
            chat_mode: ChatMode::Open,
            slow_mode_seconds: 0,
            notifications: crate::notification::NotificationSettings::default(),
        }
    }
}

/// A partial settings update, as sent by clients. Absent fields keep their value.
/// `maxBitrateKbps: null` clears the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    // `null` is refused where the document does not allow it (only `maxBitrateKbps` may be
    // null): absent means unchanged.
    #[serde(default, deserialize_with = "not_null")]
    pub quality: Option<QualityPreset>,
    #[serde(default, deserialize_with = "crate::json_int::double_option_u32")]
    pub max_bitrate_kbps: Option<Option<u32>>,
    #[serde(default, deserialize_with = "not_null")]
    pub chat_enabled: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    pub reactions_enabled: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    pub chat_mode: Option<ChatMode>,
    #[serde(default, deserialize_with = "crate::json_int::some_u32")]
    pub slow_mode_seconds: Option<u32>,
    /// Replaces the notification settings as a whole (fields left out take their defaults).
    #[serde(default, deserialize_with = "not_null")]
    pub notifications: Option<crate::notification::NotificationSettings>,
}

/// An optional field that may be absent (`None`, with `#[serde(default)]`) but not `null`.
pub(crate) fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Distinguishes "absent" (outer `None`) from "null" (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl Settings {
    /// Applies a patch and validates the result; on error `self` is unchanged.
    pub fn patched(&self, patch: &SettingsPatch) -> Result<Settings, ValidationError> {
        let mut s = self.clone();
        if let Some(q) = patch.quality {
            s.quality = q;
        }
        if let Some(b) = patch.max_bitrate_kbps {
            s.max_bitrate_kbps = b;
        }
        if let Some(v) = patch.chat_enabled {
            s.chat_enabled = v;
        }
        if let Some(v) = patch.reactions_enabled {
            s.reactions_enabled = v;
        }
        if let Some(v) = patch.chat_mode {
            s.chat_mode = v;
        }
        if let Some(v) = patch.slow_mode_seconds {
            s.slow_mode_seconds = v;
        }
        if let Some(n) = &patch.notifications {
            s.notifications = n.clone().normalised()?;
        }
        validate::settings(&s)?;
        Ok(s)
    }
}

/// Counters kept with atomic updates by the stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStats {
    pub current_viewers: u64,
    pub peak_viewers: u64,
    pub total_views: u64,
    pub messages: u64,
    pub reactions: u64,
}

/// A stream as the API shows it. It never holds the stream key or its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    pub id: String,
    pub channel_id: String,
    pub owner_id: String,
    pub title: String,
    pub description: String,
    pub thumbnail_url: Option<String>,
    pub status: StreamStatus,
    #[serde(with = "rfc3339_millis::option", default)]
    pub scheduled_at: Option<Timestamp>,
    #[serde(with = "rfc3339_millis::option", default)]
    pub started_at: Option<Timestamp>,
    #[serde(with = "rfc3339_millis::option", default)]
    pub ended_at: Option<Timestamp>,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
    #[serde(with = "rfc3339_millis")]
    pub updated_at: Timestamp,
    pub settings: Settings,
    #[serde(default)]
    pub visibility: Visibility,
    pub stats: StreamStats,
    pub pinned_message_id: Option<String>,
    /// Bumped on every owner edit; edits are conditional on it (no lost updates).
    pub version: u64,
}

/// What a client sends to create a stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewStream {
    pub channel_id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, with = "rfc3339_millis::option")]
    pub scheduled_at: Option<Timestamp>,
    #[serde(default)]
    pub settings: SettingsPatch,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
    #[serde(default)]
    pub visibility: Visibility,
}

/// What an owner may change after creation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamPatch {
    #[serde(default, deserialize_with = "not_null")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub thumbnail_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    pub settings: Option<SettingsPatch>,
    /// Reschedules a `scheduled` stream (the handler refuses it in any other status): must
    /// lie in the future and within the scheduling horizon. `null` or absent: unchanged.
    #[serde(default, with = "rfc3339_millis::option")]
    pub scheduled_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "not_null")]
    pub visibility: Option<Visibility>,
}

impl Stream {
    /// Builds a new stream from validated input: `scheduled` when `scheduledAt` lies in the
    /// future, else `preparing`.
    pub fn create(
        id: String,
        owner_id: String,
        input: NewStream,
        now: Timestamp,
    ) -> Result<Stream, ValidationError> {
        validate::channel_id(&input.channel_id)?;
        let title = validate::title(&input.title)?;
        let description = validate::description(&input.description)?;
        if let Some(url) = &input.thumbnail_url {
            validate::thumbnail_url(url)?;
        }
        if let Some(at) = input.scheduled_at {
            validate::scheduled_at(at, now)?;
        }
        let settings = Settings::default().patched(&input.settings)?;
        let status = match input.scheduled_at {
            Some(at) if at > now => StreamStatus::Scheduled,
            _ => StreamStatus::Preparing,
        };
        Ok(Stream {
            id,
            channel_id: input.channel_id,
            owner_id,
            title,
            description,
            thumbnail_url: input.thumbnail_url,
            status,
            scheduled_at: input.scheduled_at,
            started_at: None,
            ended_at: None,
            created_at: now,
            updated_at: now,
            settings,
            visibility: input.visibility,
            stats: StreamStats::default(),
            pinned_message_id: None,
            version: 1,
        })
    }

    /// Returns the stream with the patch applied and validated; `self` is unchanged on error.
    pub fn patched(&self, patch: &StreamPatch, now: Timestamp) -> Result<Stream, ValidationError> {
        let mut s = self.clone();
        if let Some(t) = &patch.title {
            s.title = validate::title(t)?;
        }
        if let Some(d) = &patch.description {
            s.description = validate::description(d)?;
        }
        if let Some(url) = &patch.thumbnail_url {
            if let Some(url) = url {
                validate::thumbnail_url(url)?;
            }
            s.thumbnail_url = url.clone();
        }
        if let Some(p) = &patch.settings {
            s.settings = s.settings.patched(p)?;
        }
        if let Some(at) = patch.scheduled_at {
            validate::rescheduled_at(at, now)?;
            s.scheduled_at = Some(at);
        }
        if let Some(v) = patch.visibility {
            s.visibility = v;
        }
        s.updated_at = now;
        s.version += 1;
        Ok(s)
    }

    pub fn is_owned_by(&self, user_id: &str) -> bool {
        self.owner_id == user_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command::*;
    use StreamStatus::*;

    use crate::time::now;

    #[test]
    fn every_legal_transition_is_allowed() {
        let legal = [
            (Scheduled, Start, Transition::To(Preparing)),
            (Preparing, Start, Transition::Unchanged),
            (Preparing, GoLive, Transition::To(Live)),
            (Preparing, End, Transition::To(Ended)),
            (Live, End, Transition::To(Ended)),
            (Scheduled, Cancel, Transition::To(Cancelled)),
            (Preparing, Cancel, Transition::To(Cancelled)),
        ];
        for (from, cmd, expect) in legal {
            assert_eq!(from.next(cmd), Ok(expect), "{from} {cmd:?}");
        }
    }

    #[test]
    fn every_other_transition_is_illegal() {
        let legal = [
            (Scheduled, Start),
            (Preparing, Start),
            (Preparing, GoLive),
            (Preparing, End),
            (Live, End),
            (Scheduled, Cancel),
            (Preparing, Cancel),
        ];
        let mut illegal = 0;
        for from in ALL {
            for cmd in [Start, GoLive, End, Cancel] {
                if legal.contains(&(from, cmd)) {
                    continue;
                }
                assert_eq!(
                    from.next(cmd),
                    Err(IllegalTransition { from, command: cmd })
                );
                illegal += 1;
            }
        }
        assert_eq!(illegal, 13);
    }

    #[test]
    fn final_statuses_accept_nothing() {
        for from in [Ended, Cancelled] {
            assert!(from.is_final());
            assert!(!from.accepts_ingest());
            for cmd in [Start, GoLive, End, Cancel] {
                assert!(from.next(cmd).is_err());
            }
        }
    }

    #[test]
    fn sources_are_the_statuses_a_command_moves_from() {
        assert_eq!(StreamStatus::sources(Start), vec![Scheduled]);
        assert_eq!(StreamStatus::sources(GoLive), vec![Preparing]);
        assert_eq!(StreamStatus::sources(End), vec![Preparing, Live]);
        assert_eq!(StreamStatus::sources(Cancel), vec![Scheduled, Preparing]);
    }

    #[test]
    fn ingest_is_accepted_until_the_stream_is_over() {
        assert!(Scheduled.accepts_ingest() && Preparing.accepts_ingest() && Live.accepts_ingest());
    }

    fn new_stream(json: serde_json::Value) -> Result<Stream, ValidationError> {
        let input: NewStream = serde_json::from_value(json).expect("shape");
        Stream::create(crate::ids::new_id(), "u1".into(), input, now())
    }

    #[test]
    fn a_stream_without_schedule_is_preparing() {
        let s = new_stream(serde_json::json!({"channelId":"channel-uuid","title":"Test Stream","description":"Testing live streaming"}))
            .expect("valid");
        assert_eq!(s.status, Preparing);
        assert_eq!(s.settings, Settings::default());
        assert_eq!(s.version, 1);
    }

    #[test]
    fn a_stream_scheduled_in_the_future_is_scheduled_and_in_the_past_preparing() {
        let future = crate::time::format(&(now() + chrono::Duration::hours(1)));
        let s = new_stream(serde_json::json!({"channelId":"c","title":"t","scheduledAt":future}))
            .expect("valid");
        assert_eq!(s.status, Scheduled);
        let past = crate::time::format(&(now() - chrono::Duration::minutes(1)));
        let s = new_stream(serde_json::json!({"channelId":"c","title":"t","scheduledAt":past}))
            .expect("valid");
        assert_eq!(s.status, Preparing);
    }

    /// Regression inputs of the rest_body fuzz harness (fuzz/corpus/rest_body): its
    /// read-back check failed on both before the fix.
    #[test]
    fn a_created_stream_reads_back_as_written() {
        // Sub-millisecond digits were kept in the stream but dropped by the stored text.
        let s = new_stream(serde_json::json!({"channelId":"c","title":"t","scheduledAt":"2026-01-01T00:00:00.0001Z"}))
            .expect("valid");
        let text = serde_json::to_string(&s).expect("to JSON");
        assert!(
            text.contains(r#""scheduledAt":"2026-01-01T00:00:00.000Z""#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<Stream>(&text).expect("reads back"),
            s
        );
    }

    #[test]
    fn a_scheduled_at_before_the_year_0000_in_utc_is_refused() {
        // Year -1 in UTC: stored as `-0001-12-31T23:00:00.000Z`, which nothing reads back.
        let e = new_stream(serde_json::json!({"channelId":"c","title":"t","scheduledAt":"0000-01-01T00:00:00+01:00"}))
            .unwrap_err();
        assert_eq!(e.field, "scheduledAt");
        let s = new_stream(
            serde_json::json!({"channelId":"c","title":"t","scheduledAt":"0000-01-01T00:00:00Z"}),
        )
        .expect("year 0000 is fine");
        let text = serde_json::to_string(&s).expect("to JSON");
        assert_eq!(
            serde_json::from_str::<Stream>(&text).expect("reads back"),
            s
        );
    }

    #[test]
    fn create_validates_every_field() {
        assert_eq!(
            new_stream(serde_json::json!({"channelId":"c","title":"  "}))
                .unwrap_err()
                .field,
            "title"
        );
        assert_eq!(
            new_stream(serde_json::json!({"channelId":"","title":"t"}))
                .unwrap_err()
                .field,
            "channelId"
        );
        assert_eq!(
            new_stream(serde_json::json!({"channelId":"c","title":"t","settings":{"slowModeSeconds":999999}}))
                .unwrap_err()
                .field,
            "settings.slowModeSeconds"
        );
    }

    #[test]
    fn unknown_fields_and_bad_enums_do_not_parse() {
        assert!(
            serde_json::from_value::<NewStream>(
                serde_json::json!({"channelId":"c","title":"t","status":"live"})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<SettingsPatch>(serde_json::json!({"quality":"4k"})).is_err()
        );
        assert!(
            serde_json::from_value::<SettingsPatch>(serde_json::json!({"chatMode":"everyone"}))
                .is_err()
        );
    }

    #[test]
    fn patch_changes_only_what_it_names_and_bumps_the_version() {
        let s = new_stream(
            serde_json::json!({"channelId":"c","title":"t","settings":{"maxBitrateKbps":2500}}),
        )
        .expect("valid");
        let patch: StreamPatch = serde_json::from_value(
            serde_json::json!({"title":"new","settings":{"chatEnabled":false}}),
        )
        .expect("shape");
        let p = s.patched(&patch, now()).expect("valid");
        assert_eq!(p.title, "new");
        assert_eq!(p.description, s.description);
        assert!(!p.settings.chat_enabled);
        assert_eq!(p.settings.max_bitrate_kbps, Some(2500));
        assert_eq!(p.version, 2);
        let clear: StreamPatch =
            serde_json::from_value(serde_json::json!({"settings":{"maxBitrateKbps":null}}))
                .expect("shape");
        assert_eq!(
            p.patched(&clear, now())
                .expect("valid")
                .settings
                .max_bitrate_kbps,
            None
        );
    }

    #[test]
    fn an_invalid_patch_leaves_the_stream_unchanged() {
        let s = new_stream(serde_json::json!({"channelId":"c","title":"t"})).expect("valid");
        let patch: StreamPatch = serde_json::from_value(
            serde_json::json!({"title":"ok","description":"x".repeat(5001)}),
        )
        .expect("shape");
        assert_eq!(s.patched(&patch, now()).unwrap_err().field, "description");
        assert_eq!(s.title, "t");
    }

    #[test]
    fn stream_json_is_camel_case_and_has_no_key() {
        let s = new_stream(serde_json::json!({"channelId":"c","title":"t"})).expect("valid");
        let v = serde_json::to_value(&s).expect("json");
        for field in [
            "channelId",
            "ownerId",
            "createdAt",
            "settings",
            "stats",
            "pinnedMessageId",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
        assert!(!v.to_string().to_lowercase().contains("key"));
        let back: Stream = serde_json::from_value(v).expect("roundtrip");
        assert_eq!(back, s);
    }
}
