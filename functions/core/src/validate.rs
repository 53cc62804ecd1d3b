//! Input rules. Each function returns the cleaned value or a [`ValidationError`] naming the
//! offending field in the API's camelCase, so clients can point at it.

use crate::stream::Settings;
use crate::time::Timestamp;

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 5_000;
pub const CHANNEL_ID_MAX: usize = 128;
pub const CHANNEL_NAME_MAX: usize = 100;
pub const MESSAGE_MAX: usize = 500;
pub const URL_MAX: usize = 2_048;
pub const SLOW_MODE_MAX_SECONDS: u32 = 3_600;
pub const BITRATE_MIN_KBPS: u32 = 300;
pub const BITRATE_MAX_KBPS: u32 = 20_000;
/// How far ahead a stream may be scheduled.
pub const SCHEDULE_HORIZON_DAYS: i64 = 366;

/// Emoji a reaction may carry. A short list keeps overlays legible and storage bounded.
pub const REACTION_EMOJI: &[&str] = &["❤️", "🔥", "👏", "😂", "😮", "😢", "🎉", "👍"];

/// One rule broken by one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        message: message.into(),
    }
}

fn has_control_chars(s: &str, allow_newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\t')))
}

/// Trimmed, 1–200 characters, single line.
pub fn title(raw: &str) -> Result<String, ValidationError> {
    single_line("title", raw, TITLE_MAX)
}

/// A channel's display name: trimmed, 1–100 characters, single line.
pub fn channel_name(raw: &str) -> Result<String, ValidationError> {
    single_line("name", raw, CHANNEL_NAME_MAX)
}

fn single_line(field: &'static str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let t = raw.trim();
    let n = t.chars().count();
    if n == 0 {
        return Err(err(field, "must not be empty"));
    }
    if n > max {
        return Err(err(field, format!("must be at most {max} characters")));
    }
    // Checked on the input as sent, as the OpenAPI pattern is: a trailing `\r` is refused,
    // not trimmed away.
    if has_control_chars(raw, false) {
        return Err(err(field, "must not contain control characters"));
    }
    Ok(t.to_owned())
}

/// Up to 5,000 characters; newlines allowed.
pub fn description(raw: &str) -> Result<String, ValidationError> {
    let d = raw.trim();
    if d.chars().count() > DESCRIPTION_MAX {
        return Err(err(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if has_control_chars(raw, true) {
        return Err(err("description", "must not contain control characters"));
    }
    Ok(d.to_owned())
}

/// 1–128 of `[A-Za-z0-9._:-]`: channel ids end up in storage keys.
pub fn channel_id(raw: &str) -> Result<(), ValidationError> {
    if raw.is_empty() || raw.len() > CHANNEL_ID_MAX {
        return Err(err(
            "channelId",
            format!("must be 1 to {CHANNEL_ID_MAX} characters"),
        ));
    }
    if !raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(err(
            "channelId",
            "may contain only letters, digits and . _ : -",
        ));
    }
    Ok(())
}

/// A user id as it appears in paths (a token's `sub`): 1–128 of `[A-Za-z0-9._:@|-]`.
pub fn user_id(raw: &str) -> Result<(), ValidationError> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '|'));
    if ok {
        Ok(())
    } else {
        Err(err(
            "userId",
            "must be 1 to 128 of letters, digits and . _ : @ | -",
        ))
    }
}

/// An absolute http(s) URL of reasonable length.
pub fn thumbnail_url(raw: &str) -> Result<(), ValidationError> {
    let ok_scheme = raw.starts_with("https://") || raw.starts_with("http://");
    if !ok_scheme || raw.len() > URL_MAX || raw.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(err(
            "thumbnailUrl",
            "must be an http(s) URL of at most 2048 characters",
        ));
    }
    Ok(())
}

/// Not more than [`SCHEDULE_HORIZON_DAYS`] ahead. A time in the past is allowed: the stream
/// simply starts out `preparing`; but not before the year 0000 in UTC, which could not be
/// stored as RFC 3339 ([`crate::time::formats_as_rfc3339`]).
pub fn scheduled_at(at: Timestamp, now: Timestamp) -> Result<(), ValidationError> {
    if !crate::time::formats_as_rfc3339(&at) {
        return Err(err(
            "scheduledAt",
            "must lie in the years 0000 to 9999 (UTC)",
        ));
    }
    if at > now + chrono::Duration::days(SCHEDULE_HORIZON_DAYS) {
        return Err(err(
            "scheduledAt",
            format!("must be within {SCHEDULE_HORIZON_DAYS} days"),
        ));
    }
    Ok(())
}

/// A new start time for a scheduled stream: in the future (a stream due now is started,
/// not rescheduled) and not more than [`SCHEDULE_HORIZON_DAYS`] ahead.
pub fn rescheduled_at(at: Timestamp, now: Timestamp) -> Result<(), ValidationError> {
    if at <= now {
        return Err(err(
            "scheduledAt",
            "must be in the future (start the stream instead)",
        ));
    }
    scheduled_at(at, now)
}

/// Ranges of the settings that are numbers.
pub fn settings(s: &Settings) -> Result<(), ValidationError> {
    if let Some(b) = s.max_bitrate_kbps
        && !(BITRATE_MIN_KBPS..=BITRATE_MAX_KBPS).contains(&b)
    {
        return Err(err(
            "settings.maxBitrateKbps",
            format!("must be between {BITRATE_MIN_KBPS} and {BITRATE_MAX_KBPS}"),
        ));
    }
    if s.slow_mode_seconds > SLOW_MODE_MAX_SECONDS {
        return Err(err(
            "settings.slowModeSeconds",
            format!("must be between 0 and {SLOW_MODE_MAX_SECONDS}"),
        ));
    }
    Ok(())
}

/// Trimmed, 1–500 characters.
pub fn chat_content(raw: &str) -> Result<String, ValidationError> {
    let c = raw.trim();
    let n = c.chars().count();
    if n == 0 {
        return Err(err("content", "must not be empty"));
    }
    if n > MESSAGE_MAX {
        return Err(err(
            "content",
            format!("must be at most {MESSAGE_MAX} characters"),
        ));
    }
    if has_control_chars(raw, true) {
        return Err(err("content", "must not contain control characters"));
    }
    Ok(c.to_owned())
}

/// One of [`REACTION_EMOJI`].
pub fn emoji(raw: &str) -> Result<(), ValidationError> {
    if REACTION_EMOJI.contains(&raw) {
        Ok(())
    } else {
        Err(err(
            "emoji",
            format!("must be one of {}", REACTION_EMOJI.join(" ")),
        ))
    }
}

/// A percentage of the player's width or height, 0–100.
pub fn position(field: &'static str, v: f64) -> Result<(), ValidationError> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(err(field, "must be between 0 and 100"))
    }
}

/// Page sizes: 1 to `max`, default when absent.
pub fn limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ValidationError> {
    match raw {
        None => Ok(default),
        Some(r) => match r.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(err("limit", format!("must be an integer from 1 to {max}"))),
        },
    }
}

/// Largest thumbnail image an owner may upload.
pub const THUMBNAIL_MAX_BYTES: u64 = 2 * 1024 * 1024;

/// An image type accepted for thumbnails, with the file extension its object gets.
pub fn thumbnail_type(content_type: &str) -> Result<&'static str, ValidationError> {
    match content_type {
        "image/jpeg" => Ok("jpg"),
        "image/png" => Ok("png"),
        "image/webp" => Ok("webp"),
        _ => Err(err(
            "contentType",
            "must be image/jpeg, image/png or image/webp",
        )),
    }
}

/// An upload size from 1 byte to [`THUMBNAIL_MAX_BYTES`].
pub fn thumbnail_size(bytes: u64) -> Result<(), ValidationError> {
    if bytes == 0 || bytes > THUMBNAIL_MAX_BYTES {
        return Err(err(
            "contentLength",
            format!("must be 1 to {THUMBNAIL_MAX_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed_and_bounded() {
        assert_eq!(title("  Hello  ").expect("ok"), "Hello");
        assert!(title("").is_err());
        assert!(title("   ").is_err());
        assert!(title(&"é".repeat(200)).is_ok(), "200 characters, not bytes");
        assert!(title(&"a".repeat(201)).is_err());
        assert!(title("bad\u{0007}bell").is_err());
        assert!(title("two\nlines").is_err());
        assert!(
            title("trailing return\r").is_err(),
            "controls are checked before trimming"
        );
        assert!(title("c1 \u{0085}\u{009f} controls").is_err());
    }

    #[test]
    fn description_may_be_empty_and_multiline_but_bounded() {
        assert_eq!(description("").expect("ok"), "");
        assert!(description("line 1\nline 2").is_ok());
        assert!(description(&"x".repeat(5000)).is_ok());
        assert!(description(&"x".repeat(5001)).is_err());
    }

    #[test]
    fn channel_ids_are_safe_key_material() {
        assert!(channel_id("channel-uuid").is_ok());
        assert!(channel_id("a.b:c_d-9").is_ok());
        for bad in ["", "a#b", "a/b", "a b", "ü"] {
            assert!(channel_id(bad).is_err(), "{bad}");
        }
        assert!(channel_id(&"a".repeat(129)).is_err());
    }

    #[test]
    fn user_ids_are_safe_key_material() {
        assert!(user_id("auth0|abc-123").is_ok());
        assert!(user_id("a@b.c").is_ok());
        for bad in ["", "a#b", "a/b", "a b"] {
            assert!(user_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thumbnails_must_be_http_urls() {
        assert!(thumbnail_url("https://cdn.example.com/t.jpg").is_ok());
        for bad in ["ftp://x", "javascript:alert(1)", "https://a b", ""] {
            assert!(thumbnail_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedule_is_bounded_to_a_year() {
        let now = chrono::Utc::now();
        assert!(scheduled_at(now + chrono::Duration::days(30), now).is_ok());
        assert!(scheduled_at(now - chrono::Duration::days(1), now).is_ok());
        assert!(scheduled_at(now + chrono::Duration::days(400), now).is_err());
    }

    #[test]
    fn a_new_start_time_must_be_in_the_future_and_within_the_horizon() {
        let now = crate::time::now();
        assert!(rescheduled_at(now + chrono::Duration::hours(2), now).is_ok());
        assert!(rescheduled_at(now, now).is_err());
        assert!(rescheduled_at(now - chrono::Duration::minutes(1), now).is_err());
        assert!(rescheduled_at(now + chrono::Duration::days(400), now).is_err());
    }

    #[test]
    fn settings_ranges_hold() {
        let mut s = Settings::default();
        assert!(settings(&s).is_ok());
        s.max_bitrate_kbps = Some(299);
        assert_eq!(settings(&s).unwrap_err().field, "settings.maxBitrateKbps");
        s.max_bitrate_kbps = Some(20_000);
        assert!(settings(&s).is_ok());
        s.max_bitrate_kbps = Some(20_001);
        assert!(settings(&s).is_err());
        s.max_bitrate_kbps = None;
        s.slow_mode_seconds = 3_600;
        assert!(settings(&s).is_ok());
        s.slow_mode_seconds = 3_601;
        assert_eq!(settings(&s).unwrap_err().field, "settings.slowModeSeconds");
    }

    #[test]
    fn chat_messages_are_1_to_500_characters() {
        assert_eq!(chat_content(" hi ").expect("ok"), "hi");
        assert!(chat_content("").is_err());
        assert!(chat_content(" \n ").is_err());
        assert!(chat_content(&"😀".repeat(500)).is_ok());
        assert!(chat_content(&"a".repeat(501)).is_err());
    }

    #[test]
    fn only_allow_listed_emoji_react() {
        for e in REACTION_EMOJI {
            assert!(emoji(e).is_ok());
        }
        for bad in ["", "💩", "heart", "❤️❤️"] {
            assert!(emoji(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn positions_are_percentages() {
        assert!(position("positionX", 0.0).is_ok());
        assert!(position("positionX", 100.0).is_ok());
        assert!(position("positionX", 50.5).is_ok());
        for bad in [-0.1, 100.1, f64::NAN, f64::INFINITY] {
            assert!(position("positionY", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_bounded_integers() {
        assert_eq!(limit(None, 20, 100).expect("ok"), 20);
        assert_eq!(limit(Some("100"), 20, 100).expect("ok"), 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            assert!(limit(Some(bad), 20, 100).is_err(), "{bad}");
        }
    }
}
