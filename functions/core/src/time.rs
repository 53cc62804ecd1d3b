//! Timestamps: UTC, RFC 3339 with exactly three fractional digits so that string order is
//! time order (the DynamoDB sort keys rely on it).

use chrono::{DateTime, SecondsFormat, Utc};

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

/// Serde adapter that writes [`format`] and reads any RFC 3339 timestamp.
pub mod rfc3339_millis {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let raw = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(serde::de::Error::custom)
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
            raw.map(|raw| {
                chrono::DateTime::parse_from_rfc3339(&raw)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(serde::de::Error::custom)
            })
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
}
