//! The stack's EventBridge bus: feed events published with `PutEvents` over
//! [`SignedClient`] (no SDK crate for one call).
//!
//! An entry is `Source: "rill"`, `DetailType:` the event type (`stream:start`, ...),
//! `Detail:` `{"channelId", "streamId", "seq", "type", "data", "ts"}`, on the bus named by
//! `EVENT_BUS_NAME`. EventBridge itself promises no order, so entries of one stream are
//! put in sequence order, ten per call (its limit), and a call is made only after the
//! previous one was taken; a consumer that needs order sorts or de-duplicates by
//! `(streamId, seq)`.
//!
//! Invariant: `Ok` means every entry was accepted. When EventBridge refuses some entries of
//! a call (`FailedEntryCount`), the call's entries from the first refused one on are put
//! again (up to [`ATTEMPTS`] times), so no entry is put before one that precedes it.

use aws_config::SdkConfig;
use serde_json::{Value, json};

use crate::ecs::{Service, SignedClient};

/// Entries per `PutEvents` call (EventBridge's limit).
pub const ENTRIES_PER_CALL: usize = 10;
/// Calls per group of entries before giving up.
const ATTEMPTS: u32 = 4;
/// The `Source` of every entry.
pub const SOURCE: &str = "rill";

/// One entry: the event type and its detail (a JSON object).
#[derive(Debug, Clone, PartialEq)]
pub struct BusEntry {
    pub detail_type: String,
    pub detail: Value,
}

#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    aws: SignedClient,
    bus: String,
}

impl EventBridgeBus {
    /// The bus named by `EVENT_BUS_NAME`; `None` when unset or empty.
    pub fn from_lookup(
        sdk: &SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<EventBridgeBus>, String> {
        let Some(bus) = lookup("EVENT_BUS_NAME").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let aws = SignedClient::new(sdk).map_err(|e| e.to_string())?;
        Ok(Some(EventBridgeBus {
            aws,
            bus: bus.trim().to_owned(),
        }))
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Puts `entries` in order (see the module's invariant).
    pub async fn put(&self, entries: &[BusEntry]) -> Result<(), String> {
        for group in entries.chunks(ENTRIES_PER_CALL) {
            let mut rest = group;
            let mut attempt = 0;
            while !rest.is_empty() {
                attempt += 1;
                let reply = self
                    .aws
                    .call_json(Service::Events, "AWSEvents.PutEvents", &self.request(rest))
                    .await
                    .map_err(|e| e.to_string())?;
                let taken = accepted_prefix(&reply, rest.len());
                rest = &rest[taken..];
                if !rest.is_empty() && attempt >= ATTEMPTS {
                    return Err(format!(
                        "EventBridge refused {} entries {attempt} times: {}",
                        rest.len(),
                        first_error(&reply)
                    ));
                }
            }
        }
        Ok(())
    }

    fn request(&self, entries: &[BusEntry]) -> Value {
        json!({
            "Entries": entries.iter().map(|e| json!({
                "Source": SOURCE,
                "DetailType": e.detail_type,
                "Detail": e.detail.to_string(),
                "EventBusName": self.bus,
            })).collect::<Vec<_>>()
        })
    }
}

/// How many leading entries of a call were accepted: all, or those before the first
/// result with an `ErrorCode`.
fn accepted_prefix(reply: &Value, sent: usize) -> usize {
    if reply["FailedEntryCount"].as_u64().unwrap_or(0) == 0 {
        return sent;
    }
    reply["Entries"]
        .as_array()
        .and_then(|results| results.iter().position(|r| r.get("ErrorCode").is_some()))
        .unwrap_or(0)
}

fn first_error(reply: &Value) -> String {
    reply["Entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|r| {
            r.get("ErrorCode").map(|c| {
                format!(
                    "{} {}",
                    c.as_str().unwrap_or(""),
                    r["ErrorMessage"].as_str().unwrap_or("")
                )
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partly_refused_call_keeps_only_the_entries_before_the_first_refusal() {
        let all = json!({"FailedEntryCount": 0, "Entries": [{"EventId": "a"}, {"EventId": "b"}]});
        assert_eq!(accepted_prefix(&all, 2), 2);
        let some = json!({"FailedEntryCount": 1, "Entries": [
            {"EventId": "a"},
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"},
            {"EventId": "c"}
        ]});
        // "c" was accepted but comes after a refused entry: it is put again, after "b".
        assert_eq!(accepted_prefix(&some, 3), 1);
        assert_eq!(first_error(&some), "ThrottlingException slow down");
        assert_eq!(accepted_prefix(&json!({"FailedEntryCount": 2}), 2), 0);
    }
}
