//! DynamoDB implementation of the analytics store: minute buckets (`STREAM#{id}` /
//! `MIN#{minute}`) and the per-view rows read back from `CONN#`, `SESSION#` and `VIEWER#`.
//!
//! A bucket is one item whose attributes are the [`Minute`]'s numbers, written with `ADD`
//! only (plus `SET` of the viewer count at a second), so batches add up without a read:
//! - fixed counters: `viewsStarted`, `viewsEnded`, `endedWatchMs`, `reports`, `watchedMs`,
//!   `rebufferMs`, `rebuffers`, `switchesUp`, `switchesDown`, `droppedFrames`,
//!   `playbackStarts`, `failures`, `chatMessages`;
//! - `chatters`: a string set of user ids;
//! - labelled counters `{family}:{label}` for renditions (ms), reactions, countries,
//!   browsers, OSes and devices, watch and rebuffering time by country and device
//!   (`wcountry`, `rcountry`, `wdevice`, `rdevice`), and histogram bins
//!   `{histogram}:{bin index}`;
//! - `vc:{second}`: the viewer count set at that second of the minute.
//!
//! Idempotency: each update carries `applied:{part}` = the batch's change position and the
//! condition that the stored one is older; a redelivered batch fails the condition and
//! adds nothing. An update is split into parts that keep the expression under DynamoDB's
//! 4 KB limit (a minute where hundreds of countries arrived); the parts of one batch are
//! the same on a redelivery, so each part is applied once.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use rill_core::analytics::metrics::{View, ViewReport};
use rill_core::analytics::{
    BANDWIDTH_BINS_KBPS, Histogram, LATENCY_BINS_MS, MINUTE_MS, Minute, STARTUP_BINS_MS,
};
use rill_core::store::{AnalyticsStore, StoreError};
use rill_core::time::{self, Timestamp};

use crate::changes::analytics::{SessionItem, ViewerItem};
use crate::keys::{self, ItemKey, Listed};
use crate::realtime::ConnectionItem;
use crate::store::{DynamoStore, Item, from_item, n, s, unavailable, unless_condition_failed};

/// Room left in an update expression for the guard (DynamoDB allows 4 KB).
const EXPRESSION_BUDGET: usize = 3_000;

const COUNTERS: &[&str] = &[
    "viewsStarted",
    "viewsEnded",
    "endedWatchMs",
    "reports",
    "watchedMs",
    "rebufferMs",
    "rebuffers",
    "switchesUp",
    "switchesDown",
    "droppedFrames",
    "playbackStarts",
    "failures",
    "chatMessages",
];

/// The plain counters of a bucket, in [`COUNTERS`]' order (read through
/// [`counters_mut`], so the fields are listed once; a bucket is written once per batch).
fn counters(m: &Minute) -> [u64; 13] {
    counters_mut(&mut m.clone()).map(|v| *v)
}

fn counters_mut(m: &mut Minute) -> [&mut u64; 13] {
    [
        &mut m.views_started,
        &mut m.views_ended,
        &mut m.ended_watch_ms,
        &mut m.reports,
        &mut m.watched_ms,
        &mut m.rebuffer_ms,
        &mut m.rebuffers,
        &mut m.switches_up,
        &mut m.switches_down,
        &mut m.dropped_frames,
        &mut m.playback_starts,
        &mut m.failures,
        &mut m.chat_messages,
    ]
}

/// The labelled counters of a bucket, by attribute family (`{family}:{label}`); read
/// back through [`labelled_mut`] (the round-trip test holds the two to the same names).
fn labelled(m: &Minute) -> [(&'static str, &BTreeMap<String, u64>); 10] {
    [
        ("rend", &m.rendition_ms),
        ("emoji", &m.reactions),
        ("country", &m.countries),
        ("browser", &m.browsers),
        ("os", &m.oses),
        ("device", &m.devices),
        ("wcountry", &m.watched_by_country),
        ("rcountry", &m.rebuffer_by_country),
        ("wdevice", &m.watched_by_device),
        ("rdevice", &m.rebuffer_by_device),
    ]
}

fn labelled_mut<'a>(m: &'a mut Minute, family: &str) -> Option<&'a mut BTreeMap<String, u64>> {
    Some(match family {
        "rend" => &mut m.rendition_ms,
        "emoji" => &mut m.reactions,
        "country" => &mut m.countries,
        "browser" => &mut m.browsers,
        "os" => &mut m.oses,
        "device" => &mut m.devices,
        "wcountry" => &mut m.watched_by_country,
        "rcountry" => &mut m.rebuffer_by_country,
        "wdevice" => &mut m.watched_by_device,
        "rdevice" => &mut m.rebuffer_by_device,
        _ => return None,
    })
}

/// One attribute change of a bucket.
enum Op {
    Add(String, AttributeValue),
    Set(String, AttributeValue),
}

/// Every attribute change a delta makes, non-zero ones only.
fn ops(m: &Minute) -> Vec<Op> {
    let mut out = Vec::new();
    for (name, v) in COUNTERS.iter().zip(counters(m)) {
        if v > 0 {
            out.push(Op::Add((*name).into(), n(v)));
        }
    }
    for (second, count) in &m.viewer_counts {
        out.push(Op::Set(format!("vc:{second}"), n(count)));
    }
    if !m.chatters.is_empty() {
        out.push(Op::Add(
            "chatters".into(),
            AttributeValue::Ss(m.chatters.iter().cloned().collect()),
        ));
    }
    for (family, h) in [
        ("startup", &m.startup),
        ("latency", &m.latency),
        ("bandwidth", &m.bandwidth),
    ] {
        for (i, c) in h.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            out.push(Op::Add(format!("{family}:{i}"), n(c)));
        }
    }
    for (family, map) in labelled(m) {
        for (label, v) in map {
            out.push(Op::Add(format!("{family}:{label}"), n(v)));
        }
    }
    out
}

/// A bucket item read back as a [`Minute`]; attributes it does not know are ignored.
fn decode(start: Timestamp, item: &Item) -> Minute {
    let mut m = Minute {
        start,
        ..Minute::default()
    };
    let num = |v: &AttributeValue| v.as_n().ok().and_then(|n| n.parse::<u64>().ok());
    for (name, slot) in COUNTERS.iter().zip(counters_mut(&mut m)) {
        *slot = item.get(*name).and_then(num).unwrap_or(0);
    }
    if let Some(AttributeValue::Ss(set)) = item.get("chatters") {
        m.chatters = set.iter().cloned().collect();
    }
    for (name, v) in item {
        let Some((family, label)) = name.split_once(':') else {
            continue;
        };
        let Some(v) = num(v) else {
            continue;
        };
        let histogram = |h: &mut Histogram, bounds: &[u64]| {
            if let Ok(i) = label.parse::<usize>() {
                h.add_count(bounds, i, v);
            }
        };
        match family {
            "vc" => {
                if let Ok(second) = label.parse::<u8>() {
                    m.viewer_counts.insert(second, v);
                }
            }
            "startup" => histogram(&mut m.startup, STARTUP_BINS_MS),
            "latency" => histogram(&mut m.latency, LATENCY_BINS_MS),
            "bandwidth" => histogram(&mut m.bandwidth, BANDWIDTH_BINS_KBPS),
            family => {
                if let Some(map) = labelled_mut(&mut m, family) {
                    map.insert(label.into(), v);
                }
            }
        }
    }
    m
}

/// The start a bucket's sort key names.
fn bucket_start(item: &Item) -> Option<Timestamp> {
    keys::minute_start(item.get("sk")?.as_s().ok()?)
}

impl DynamoStore {
    /// One conditional update of a part of a bucket.
    async fn add_part(
        &self,
        stream_id: &str,
        start: &Timestamp,
        part: usize,
        ops: &[Op],
        position: &str,
    ) -> Result<(), StoreError> {
        let mut names = HashMap::from([("#g".to_owned(), format!("applied:{part}"))]);
        let mut values = HashMap::from([
            (":g".to_owned(), s(position)),
            (":e".to_owned(), s("minute")),
        ]);
        let mut set = vec!["#g = :g".to_owned(), "entity = :e".to_owned()];
        let mut add = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let (name, value, list) = match op {
                Op::Add(name, v) => (name, v, &mut add),
                Op::Set(name, v) => (name, v, &mut set),
            };
            names.insert(format!("#a{i}"), name.clone());
            values.insert(format!(":v{i}"), value.clone());
            list.push(if matches!(op, Op::Add(..)) {
                format!("#a{i} :v{i}")
            } else {
                format!("#a{i} = :v{i}")
            });
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !add.is_empty() {
            expression.push_str(&format!(" ADD {}", add.join(", ")));
        }
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::minute(stream_id, start).item()))
            .update_expression(expression)
            .condition_expression("attribute_not_exists(#g) OR #g < :g")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        if unless_condition_failed(result, "add analytics minute")?.is_none() {
            tracing::info!(stream_id, part, "analytics batch applied already; skipped");
        }
        Ok(())
    }

    /// All pages of a stream's items of one kind.
    async fn listed(&self, stream_id: &str, listed: Listed) -> Result<Vec<Item>, StoreError> {
        self.query_listed(stream_id, listed, None, false, "query views")
            .await
    }
}

/// Splits `ops` into parts whose names and values stay under the expression budget.
fn parts(ops: Vec<Op>) -> Vec<Vec<Op>> {
    let mut out: Vec<Vec<Op>> = vec![Vec::new()];
    let mut size = 0;
    for op in ops {
        let (Op::Add(name, _) | Op::Set(name, _)) = &op;
        // "#aN :vN, " plus the name's entry: generous per-op overhead.
        let cost = name.len() + 24;
        if size + cost > EXPRESSION_BUDGET && out.last().is_some_and(|p| !p.is_empty()) {
            out.push(Vec::new());
            size = 0;
        }
        size += cost;
        if let Some(p) = out.last_mut() {
            p.push(op);
        }
    }
    out
}

#[async_trait]
impl AnalyticsStore for DynamoStore {
    async fn add_minutes(
        &self,
        stream_id: &str,
        minutes: &[Minute],
        position: &str,
    ) -> Result<(), StoreError> {
        for m in minutes {
            for (part, ops) in parts(ops(m)).iter().enumerate() {
                self.add_part(stream_id, &m.start, part, ops, position)
                    .await?;
            }
        }
        Ok(())
    }

    async fn minutes(
        &self,
        stream_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Minute>, StoreError> {
        let mut out = Vec::new();
        let mut start_key = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(keys::stream_pk(stream_id)))
                .expression_attribute_values(":from", s(keys::minute(stream_id, &from).sk))
                .expression_attribute_values(":to", s(keys::minute(stream_id, &to).sk))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| unavailable("query analytics minutes", e.into_service_error()))?;
            for item in page.items.unwrap_or_default() {
                if let Some(start) = bucket_start(&item) {
                    out.push(decode(start, &item));
                }
            }
            match page.last_evaluated_key {
                Some(k) => start_key = Some(k),
                None => return Ok(out),
            }
        }
    }

    async fn count_before(&self, stream_id: &str, before: Timestamp) -> Result<u64, StoreError> {
        let from = before - chrono::Duration::milliseconds(60 * MINUTE_MS);
        let to = before - chrono::Duration::milliseconds(1);
        let minutes = self.minutes(stream_id, from, to).await?;
        Ok(minutes
            .iter()
            .rev()
            .find_map(|m| m.viewer_counts.values().next_back().copied())
            .unwrap_or(0))
    }

    async fn views(&self, stream_id: &str, now: Timestamp) -> Result<Vec<View>, StoreError> {
        let (open, ended, reports) = tokio::try_join!(
            self.listed(stream_id, Listed::Connections),
            self.listed(stream_id, Listed::Sessions),
            self.listed(stream_id, Listed::Viewers),
        )?;
        let mut by_view: HashMap<String, ViewReport> = HashMap::new();
        for item in reports {
            let id = match keys::parse_item(&item) {
                ItemKey::Viewer { connection_id, .. } => connection_id.to_owned(),
                _ => continue,
            };
            let v: ViewerItem = from_item(item)?;
            by_view.insert(
                id,
                ViewReport {
                    started: v.started || v.startup_ms.is_some(),
                    startup_ms: v.startup_ms,
                    rebuffer_ms: v.buffering_ms,
                    rebuffers: v.rebuffers,
                    switches_up: v.switches_up,
                    switches_down: v.switches_down,
                    dropped_frames: v.dropped_frames,
                    rendition: v.quality,
                    latency_ms: v.latency_ms,
                    bandwidth_kbps: v.bandwidth_kbps,
                    fatal_error: v.fatal_error,
                },
            );
        }
        let mut views = Vec::new();
        for item in ended {
            let id = match keys::parse_item(&item) {
                ItemKey::Session { connection_id, .. } => connection_id.to_owned(),
                _ => continue,
            };
            let v: SessionItem = from_item(item)?;
            let (Ok(started_at), Ok(ended_at)) =
                (time::parse(&v.connected_at), time::parse(&v.ended_at))
            else {
                continue;
            };
            views.push(View {
                report: by_view.remove(&id),
                view_id: id,
                user_id: v.user_id,
                started_at,
                ended_at: Some(ended_at),
                watch_ms: v.watch_ms,
            });
        }
        for item in open {
            let c = from_item::<ConnectionItem>(item)?.connection;
            if !c.counted {
                continue;
            }
            views.push(View {
                report: by_view.remove(&c.connection_id),
                watch_ms: u64::try_from((now - c.connected_at).num_milliseconds()).unwrap_or(0),
                view_id: c.connection_id,
                user_id: c.user_id,
                started_at: c.connected_at,
                ended_at: None,
            });
        }
        views.sort_by(|a, b| (a.started_at, &a.view_id).cmp(&(b.started_at, &b.view_id)));
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_reads_back_what_its_updates_wrote() {
        let start = time::parse("2026-12-07T21:14:00.000Z").expect("time");
        let mut m = Minute {
            start,
            views_started: 3,
            watched_ms: 45_000,
            chat_messages: 2,
            ..Minute::default()
        };
        m.viewer_counts.insert(7, 12);
        m.startup.add(STARTUP_BINS_MS, 800);
        m.latency.add(LATENCY_BINS_MS, 3_500);
        m.bandwidth.add(BANDWIDTH_BINS_KBPS, 4_000);
        m.rendition_ms.insert("720p".into(), 45_000);
        m.reactions.insert("🔥".into(), 4);
        m.countries.insert("DE".into(), 3);
        m.browsers.insert("Chrome".into(), 3);
        m.oses.insert("Linux".into(), 3);
        m.devices.insert("desktop".into(), 3);
        m.watched_by_country.insert("DE".into(), 45_000);
        m.rebuffer_by_country.insert("DE".into(), 900);
        m.watched_by_device.insert("desktop".into(), 45_000);
        m.rebuffer_by_device.insert("desktop".into(), 900);
        m.chatters.insert("u1".into());
        // What DynamoDB holds after the update: every op's value under its name.
        let mut item: Item = keys::minute("s", &start).item();
        for op in ops(&m) {
            let (Op::Add(name, v) | Op::Set(name, v)) = op;
            item.insert(name, v);
        }
        let back = decode(bucket_start(&item).expect("start"), &item);
        assert_eq!(back, m);
    }

    #[test]
    fn a_large_update_is_split_into_parts_under_the_expression_limit() {
        let mut m = Minute::default();
        for i in 0..400 {
            m.countries.insert(format!("C{i:03}"), 1);
        }
        let split = parts(ops(&m));
        assert!(split.len() > 1);
        assert_eq!(split.iter().map(Vec::len).sum::<usize>(), 400);
        for p in &split {
            let size: usize = p
                .iter()
                .map(|op| {
                    let (Op::Add(name, _) | Op::Set(name, _)) = op;
                    name.len() + 24
                })
                .sum();
            assert!(size <= EXPRESSION_BUDGET, "{size}");
        }
    }

    #[test]
    fn an_empty_delta_writes_nothing_but_its_guard() {
        assert!(ops(&Minute::default()).is_empty());
        assert_eq!(parts(Vec::new()).len(), 1);
    }
}
