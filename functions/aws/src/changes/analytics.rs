//! Table changes as analytics facts (`rill_core::analytics`): what `events-analytics`
//! folds into minute buckets. Like the rest of [`crate::changes`], consumers never see an
//! item: each fact is built from the item structs the store writes.
//!
//! | record | fact | time |
//! |---|---|---|
//! | INSERT `CONN#` of a counted viewer | `ViewStarted` (country, parsed user agent) | connected |
//! | INSERT `SESSION#` | `ViewEnded` (watch time) | ended |
//! | INSERT / MODIFY `VIEWER#` | `Report`: new running totals minus old | the report's `lastSeen` |
//! | MODIFY `META`, viewer count changed | `ViewerCount` | `countedAt` (presence's clock), else the record's creation time |
//! | INSERT `CHAT#` | `Chat` (author) | posted |
//! | INSERT `REACT#` | `Reaction` (emoji) | sent |

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::EventRecord;
use serde::Deserialize;

use rill_core::analytics::{ClientKind, Fact, FactKind, REPORT_GAP_MAX_MS, ReportDelta};
use rill_core::time::{self, Timestamp};

use super::{image, position, string};
use crate::chat::{ChatItem, ReactionItem};
use crate::keys::{self, ItemKey};
use crate::realtime::ConnectionItem;
use crate::streams::StreamItem;

/// A `VIEWER#` item's running totals, as `record_heartbeat` writes them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ViewerItem {
    #[serde(default)]
    pub(crate) buffering_ms: u64,
    #[serde(default)]
    pub(crate) rebuffers: u64,
    #[serde(default)]
    pub(crate) switches_up: u64,
    #[serde(default)]
    pub(crate) switches_down: u64,
    #[serde(default)]
    pub(crate) dropped_frames: u64,
    pub(crate) quality: Option<String>,
    pub(crate) startup_ms: Option<u64>,
    pub(crate) latency_ms: Option<u64>,
    pub(crate) bandwidth_kbps: Option<u64>,
    pub(crate) fatal_error: Option<String>,
    #[serde(default)]
    pub(crate) started: bool,
    pub(crate) last_seen: Option<String>,
    pub(crate) country: Option<String>,
    pub(crate) user_agent: Option<String>,
}

impl ViewerItem {
    fn last_seen(&self) -> Option<Timestamp> {
        self.last_seen.as_deref().and_then(|t| time::parse(t).ok())
    }

    /// What the report that turned `old` into `self` added (`client`: the parsed user
    /// agent, if the session has one).
    fn delta(&self, old: Option<&ViewerItem>, client: Option<ClientKind>) -> ReportDelta {
        let empty = ViewerItem::default();
        let o = old.unwrap_or(&empty);
        let watched_ms = match (o.last_seen(), self.last_seen()) {
            (Some(a), Some(b)) => u64::try_from((b - a).num_milliseconds()).unwrap_or(0),
            _ => 0,
        };
        ReportDelta {
            watched_ms: watched_ms.min(REPORT_GAP_MAX_MS),
            rendition: o.quality.clone().or_else(|| self.quality.clone()),
            rebuffer_ms: self.buffering_ms.saturating_sub(o.buffering_ms),
            rebuffers: self.rebuffers.saturating_sub(o.rebuffers),
            switches_up: self.switches_up.saturating_sub(o.switches_up),
            switches_down: self.switches_down.saturating_sub(o.switches_down),
            dropped_frames: self.dropped_frames.saturating_sub(o.dropped_frames),
            startup_ms: self.startup_ms.filter(|_| o.startup_ms.is_none()),
            latency_ms: self.latency_ms,
            bandwidth_kbps: self.bandwidth_kbps,
            started: self.started && !o.started,
            failed: self.fatal_error.is_some() && self.fatal_error != o.fatal_error,
            country: self.country.clone(),
            client,
        }
    }
}

/// A `SESSION#` item: one ended view.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionItem {
    pub(crate) watch_ms: u64,
    pub(crate) connected_at: String,
    pub(crate) ended_at: String,
    pub(crate) user_id: Option<String>,
}

/// The analytics facts of a batch, in record order, and each stream's last change
/// position in it. `classify` parses a user agent (`ua-parser` in `rill-api`).
pub fn facts(
    records: &[EventRecord],
    classify: &dyn Fn(&str) -> ClientKind,
) -> (Vec<Fact>, BTreeMap<String, String>) {
    let mut out = Vec::new();
    let mut positions: BTreeMap<String, String> = BTreeMap::new();
    // A view reports every 15 s with the same user agent: parse each one once per batch.
    let memo: std::cell::RefCell<std::collections::HashMap<String, ClientKind>> =
        Default::default();
    let classify = |ua: &str| -> ClientKind {
        if let Some(k) = memo.borrow().get(ua) {
            return k.clone();
        }
        let k = classify(ua);
        memo.borrow_mut().insert(ua.to_owned(), k.clone());
        k
    };
    for record in records {
        let before = out.len();
        fact(record, &classify, &mut out);
        if let Some(f) = out.get(before) {
            let at = position(record);
            let p = positions.entry(f.stream_id.clone()).or_default();
            if at > *p {
                *p = at;
            }
        }
    }
    (out, positions)
}

fn fact(record: &EventRecord, classify: &dyn Fn(&str) -> ClientKind, out: &mut Vec<Fact>) {
    let change = &record.change;
    let (Some(pk), Some(sk)) = (string(&change.keys, "pk"), string(&change.keys, "sk")) else {
        return;
    };
    let new = &change.new_image;
    let old = &change.old_image;
    let push = |out: &mut Vec<Fact>, stream_id: &str, at: Timestamp, kind: FactKind| {
        out.push(Fact {
            stream_id: stream_id.to_owned(),
            at,
            kind,
        });
    };
    match (record.event_name.as_str(), keys::parse(pk, sk)) {
        ("INSERT", ItemKey::Connection { stream_id, .. }) => {
            let Some(item) = image::<ConnectionItem>(new, record) else {
                return;
            };
            let c = item.connection;
            if c.counted {
                let client = c.user_agent.as_deref().map(classify).unwrap_or_default();
                push(
                    out,
                    stream_id,
                    c.connected_at,
                    FactKind::ViewStarted {
                        country: c.country,
                        client,
                    },
                );
            }
        }
        ("INSERT", ItemKey::Session { stream_id, .. }) => {
            if let Some(item) = image::<SessionItem>(new, record)
                && let Ok(at) = time::parse(&item.ended_at)
            {
                push(
                    out,
                    stream_id,
                    at,
                    FactKind::ViewEnded {
                        watch_ms: item.watch_ms,
                    },
                );
            }
        }
        ("INSERT" | "MODIFY", ItemKey::Viewer { stream_id, .. }) => {
            let Some(n) = image::<ViewerItem>(new, record) else {
                return;
            };
            let o = image::<ViewerItem>(old, record);
            let Some(at) = n.last_seen() else {
                return;
            };
            let client = n.user_agent.as_deref().map(classify);
            push(
                out,
                stream_id,
                at,
                FactKind::Report(n.delta(o.as_ref(), client)),
            );
        }
        ("MODIFY", ItemKey::Stream { stream_id }) => {
            let (Some(n), Some(o)) = (
                image::<StreamItem>(new, record),
                image::<StreamItem>(old, record),
            ) else {
                return;
            };
            let (n, o) = (n.into_stream(), o.into_stream());
            if n.stats.current_viewers != o.stats.current_viewers {
                let counted_at = string(new, "countedAt").and_then(|t| time::parse(t).ok());
                push(
                    out,
                    stream_id,
                    counted_at.unwrap_or(change.approximate_creation_date_time),
                    FactKind::ViewerCount(n.stats.current_viewers),
                );
            }
        }
        ("INSERT", ItemKey::Chat { stream_id, .. }) => {
            if let Some(item) = image::<ChatItem>(new, record) {
                let m = item.message;
                push(
                    out,
                    stream_id,
                    m.created_at,
                    FactKind::Chat {
                        user_id: m.author_id,
                    },
                );
            }
        }
        ("INSERT", ItemKey::Reaction { stream_id, .. }) => {
            if let Some(item) = image::<ReactionItem>(new, record) {
                let r = item.reaction;
                push(
                    out,
                    stream_id,
                    r.created_at,
                    FactKind::Reaction { emoji: r.emoji },
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
