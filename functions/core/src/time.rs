//! Timestamps: UTC, RFC 3339 with exactly three fractional digits so that string order is
//! time order (the DynamoDB sort keys rely on it).

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

/// The current time truncated to milliseconds: the precision we store, so a value read
/// back equals the value written.
pub fn now() -> Timestamp {
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Formats a timestamp with fixed millisecond precision, e.g. `2026-11-23T20:36:01.123Z`.
pub fn format(ts: &Timestamp) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads an RFC 3339 timestamp as it will be stored: in UTC and truncated to milliseconds,
/// so that a value read back equals the value written ([`format`] keeps milliseconds).
pub fn parse(raw: &str) -> Result<Timestamp, chrono::ParseError> {
    let t = DateTime::parse_from_rfc3339(raw)?.with_timezone(&Utc);
    Ok(DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t))
}

/// Whether [`format`] writes `t` as RFC 3339, which has four-digit years only: in UTC,
/// `0000-01-01T00:00:00+01:00` is year -1, written `-0001-...`, text that no RFC 3339
/// reader (this one included) accepts.
pub fn formats_as_rfc3339(t: &Timestamp) -> bool {
    (0..=9999).contains(&t.year())
}

/// Serde adapter that writes [`format`] and reads any RFC 3339 timestamp with [`parse`].
pub mod rfc3339_millis {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse(&raw).map_err(serde::de::Error::custom)
    }

    /// The same for optional fields.
    pub mod option {
        use super::super::Timestamp;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => s.serialize_some(&super::super::format(ts)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            let raw = Option::<String>::deserialize(d)?;
            raw.map(|raw| super::super::parse(&raw).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formatted_timestamps_sort_like_time() {
        let a = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid");
        let b = a + chrono::Duration::milliseconds(7);
        let c = a + chrono::Duration::seconds(3600 * 24 * 40);
        let mut v = [format(&c), format(&b), format(&a)];
        v.sort();
        assert_eq!(v, [format(&a), format(&b), format(&c)]);
        assert_eq!(format(&a), "2026-01-02T03:04:05.000Z");
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct At {
        #[serde(with = "rfc3339_millis")]
        at: Timestamp,
        #[serde(with = "rfc3339_millis::option", default)]
        maybe: Option<Timestamp>,
    }

    /// The rest_body fuzz harness's read-back check failed on this: `scheduledAt` with sub-millisecond digits was
    /// kept in full but stored to the millisecond, so the stream read back differed.
    #[test]
    fn timestamps_are_read_to_the_millisecond() {
        let v: At = serde_json::from_str(
            r#"{"at":"2027-01-01T00:00:00.0001Z","maybe":"2027-01-01T00:00:00.999999+00:00"}"#,
        )
        .expect("parses");
        assert_eq!(format(&v.at), "2027-01-01T00:00:00.000Z");
        assert_eq!(
            v.maybe.map(|t| format(&t)).as_deref(),
            Some("2027-01-01T00:00:00.999Z")
        );
        let text = serde_json::to_string(&v).expect("to JSON");
        assert_eq!(serde_json::from_str::<At>(&text).expect("reads back"), v);
    }

    #[test]
    fn only_four_digit_utc_years_format_as_rfc3339() {
        for raw in ["0000-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"] {
            let t = parse(raw).expect(raw);
            assert!(!formats_as_rfc3339(&t), "{raw}");
            assert!(parse(&format(&t)).is_err(), "{raw}");
        }
        for raw in [
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:00:00-01:00",
            "9999-12-31T23:59:59.999Z",
        ] {
            let t = parse(raw).expect(raw);
            assert!(formats_as_rfc3339(&t), "{raw}");
            assert_eq!(parse(&format(&t)), Ok(t), "{raw}");
        }
    }
}
