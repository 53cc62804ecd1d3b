//! `events-presence`: who is watching, paced. Joins, leaves and the viewer count of each
//! stream, from the table's change stream (its own event source mapping, filtered on AWS
//! to the audience's items: connections here; views, reports, counts, chat and reactions
//! for the analytics folded in the same batch, [`crate::analytics`]).
//!
//! Why a function of its own: the count is not kept by `$connect`/`$disconnect` (that made
//! every join a transaction on the stream's item, a hot key under a crowd) but set here
//! from the connection list, and it must go out at most once a second per stream
//! (`rill_core::presence`), which means waiting; `events-fanout` must never wait, or chat
//! and reactions would queue behind a crowd's count.
//!
//! Per stream in a batch, concurrently:
//! 1. wait out the pacing interval since this instance last sent the stream's count;
//! 2. read the connection list once, consistently (so it reflects every change up to now,
//!    including those after this batch: the count sent is the count *then*, which is what
//!    makes the trailing send exact);
//! 3. one conditional write stores the count, adds the batch's views and (a second write,
//!    only when the count is a new high) raises the peak: idempotent per change position,
//!    so a redelivered batch counts no view twice;
//! 4. one fan-out: named joins and leaves if the audience is small, then
//!    `stream:viewer-count {count, peak}`;
//! 5. the batch's ended views (`SESSION#`, watch time), 25 a write. `$disconnect` only
//!    deletes the listing, so a crowd leaving is counted out before these are written.
//!
//! Named presence: joins and leaves of signed-in users are announced by name only to
//! audiences of at most [`NAMED_PRESENCE_MAX`] open connections, at most
//! [`NAMED_PER_BATCH`] names each way per send. Beyond that everyone gets the count only:
//! naming each of N arriving viewers to all N costs N² deliveries. Anonymous viewers are
//! counted, never named.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use futures_util::future::join_all;
use rill_aws::changes::{self, Change};
use rill_core::event::{Event, EventType};
use rill_core::realtime::{Connection, EndedView};
use rill_core::store::PresenceUpdate;
use rill_core::time::{self, Timestamp};
use serde_json::{Value, json};

use crate::{ApiError, App};

/// Largest audience (open connections) that is told joins and leaves by name.
pub const NAMED_PRESENCE_MAX: usize = 50;
/// Names per direction (joined, left) per send.
pub const NAMED_PER_BATCH: usize = 20;

/// What one batch says about one stream's audience.
#[derive(Debug, Default, PartialEq)]
struct StreamPresence {
    joined: Vec<Value>,
    left: Vec<Value>,
    /// Counted joins: each is a view.
    new_views: u64,
    /// The batch's last change position for this stream.
    position: String,
    /// Counted leaves: each is a view that ended, written after the count goes out.
    ended: Vec<EndedView>,
}

/// `{userId, displayName}` of a signed-in connection; anonymous ones are not named.
fn named(connection: &Connection) -> Option<Value> {
    let user = connection.user_id.as_ref()?;
    Some(json!({"userId": user, "displayName": connection.display_name}))
}

/// The batch's presence per stream. A leave's view ends `now`, when presence sees the
/// removal: the table stream's lag (a fraction of a second here) is the error, where the
/// record's own time is only to the second on AWS and not the write's time in DynamoDB
/// Local.
fn plan(changes: Vec<Change>, now: Timestamp) -> BTreeMap<String, StreamPresence> {
    let mut out: BTreeMap<String, StreamPresence> = BTreeMap::new();
    for change in changes {
        let (left_at, connection, position) = match change {
            Change::ViewerJoined {
                connection,
                position,
            } => (None, connection, position),
            Change::ViewerLeft {
                connection,
                position,
            } => (Some(now), connection, position),
            _ => continue,
        };
        let stream = out.entry(connection.stream_id.clone()).or_default();
        match left_at {
            None => {
                stream.new_views += u64::from(connection.counted);
                stream.joined.extend(named(&connection));
            }
            Some(ended_at) => {
                stream.left.extend(named(&connection));
                if connection.counted {
                    stream.ended.push(EndedView {
                        connection,
                        ended_at,
                    });
                }
            }
        }
        if position > stream.position {
            stream.position = position;
        }
    }
    out
}

/// The frames one send carries: names (small audiences only), then the count.
fn frames(
    stream_id: &str,
    presence: StreamPresence,
    audience_size: usize,
    (count, peak): (u64, u64),
) -> Vec<Event> {
    let now = time::now();
    let mut events = Vec::new();
    if audience_size <= NAMED_PRESENCE_MAX {
        for (kind, people) in [
            (EventType::ViewerJoined, presence.joined),
            (EventType::ViewerLeft, presence.left),
        ] {
            for who in people.into_iter().take(NAMED_PER_BATCH) {
                events.push(Event::new(kind, stream_id, who, now));
            }
        }
    }
    events.push(Event::new(
        EventType::ViewerCount,
        stream_id,
        json!({"count": count, "peak": peak}),
        now,
    ));
    events
}

fn pacer(app: &App) -> std::sync::MutexGuard<'_, rill_core::presence::Pacer> {
    app.caches
        .presence
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

async fn announce(
    app: &App,
    stream_id: String,
    mut presence: StreamPresence,
) -> Result<(), ApiError> {
    let ended = std::mem::take(&mut presence.ended);
    let wait = pacer(app).wait(&stream_id, Instant::now());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    // Consistent: the count must reflect every change up to now.
    let audience = app.realtime.audience_of(&stream_id, true).await?;
    let update = PresenceUpdate {
        viewers: audience.viewers,
        new_views: presence.new_views,
        position: presence.position.clone(),
    };
    if let Some(counts) = app.realtime.record_presence(&stream_id, &update).await? {
        let events = frames(&stream_id, presence, audience.connection_ids.len(), counts);
        pacer(app).sent(&stream_id, Instant::now());
        crate::shard::fan_out(app, &stream_id, &events, &audience.connection_ids).await?;
    } // else the stream is gone: its ended views are still recorded.
    // After the count: a crowd leaving is counted out before its views are written, so
    // these writes never delay the count (25 a call).
    app.realtime.record_ended_views(&ended).await?;
    Ok(())
}

/// The Lambda handler: one batch of stream records; streams are announced concurrently,
/// and, alongside, the batch is folded into the analytics buckets ([`crate::analytics`]:
/// the same mapping, so the table's stream keeps its readers per shard few).
pub async fn handle(app: Arc<App>, event: StreamEvent) -> Result<(), ApiError> {
    let event = Arc::new(event);
    let announced = async {
        let streams = plan(changes::decode(&event.records), time::now());
        let results = join_all(
            streams
                .into_iter()
                .map(|(stream_id, presence)| announce(&app, stream_id, presence)),
        )
        .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()
    };
    let (announced, folded) =
        tokio::join!(announced, crate::analytics::fold_batch(&app, event.clone()));
    announced?;
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(id: &str, user: Option<&str>, counted: bool) -> Connection {
        Connection {
            connection_id: id.into(),
            stream_id: "a".into(),
            user_id: user.map(str::to_owned),
            display_name: user.map(|u| format!("{u}!")),
            connected_at: time::now(),
            counted,
            country: None,
            user_agent: None,
        }
    }

    fn joined(c: Connection, at: u64) -> Change {
        Change::ViewerJoined {
            connection: c,
            position: format!("{at:0>40}"),
        }
    }

    fn left(c: Connection, at: u64) -> Change {
        Change::ViewerLeft {
            connection: c,
            position: format!("{at:0>40}"),
        }
    }

    #[test]
    fn signed_in_joins_and_leaves_are_named_and_counted_joins_are_views() {
        let plan = plan(
            vec![
                joined(connection("1", Some("ann"), true), 1),
                joined(connection("2", None, true), 2),
                // The broadcaster's own page is no view.
                joined(connection("3", Some("owner"), false), 3),
                left(connection("4", Some("ben"), true), 4),
                // Nor is its leave an ended view.
                left(connection("5", Some("owner"), false), 5),
            ],
            time::now(),
        );
        let a = &plan["a"];
        assert_eq!(
            a.joined,
            [
                json!({"userId": "ann", "displayName": "ann!"}),
                json!({"userId": "owner", "displayName": "owner!"})
            ]
        );
        assert_eq!(
            a.left,
            [
                json!({"userId": "ben", "displayName": "ben!"}),
                json!({"userId": "owner", "displayName": "owner!"})
            ]
        );
        assert_eq!(a.new_views, 2);
        let ended: Vec<&str> = a
            .ended
            .iter()
            .map(|v| v.connection.connection_id.as_str())
            .collect();
        assert_eq!(ended, ["4"], "a counted leave is an ended view");
        assert_eq!(a.position, format!("{:0>40}", 5), "the last position");
    }

    #[test]
    fn other_changes_are_not_presence() {
        let plan = plan(
            vec![Change::ChatDeleted {
                stream_id: "a".into(),
                message_id: "m".into(),
            }],
            time::now(),
        );
        assert!(plan.is_empty());
    }

    #[test]
    fn a_large_audience_gets_the_count_only_and_names_are_capped() {
        let many = || {
            let mut p = StreamPresence::default();
            for i in 0..30 {
                p.joined.push(json!({"userId": i.to_string()}));
            }
            p
        };
        let small = frames("a", many(), 10, (10, 12));
        assert_eq!(small.len(), NAMED_PER_BATCH + 1);
        let count = small.last().expect("count");
        assert_eq!(count.kind, EventType::ViewerCount);
        assert_eq!(count.data, json!({"count": 10, "peak": 12}));

        let large = frames("a", many(), NAMED_PRESENCE_MAX + 1, (51, 51));
        assert_eq!(large.len(), 1, "count only");
    }
}
