//! DynamoDB implementation of the realtime stores.
//!
//! Items (key shapes in [`crate::keys`]):
//! - one per open socket, in the stream's partition (fan-out lists these). Socket events
//!   carry the stream and user in their authorizer context, so nothing looks a socket up
//!   by its id. It expires through `ttl` (maximum connection age plus slack) in case a
//!   `$disconnect` never arrives.
//! - ban and moderator flags per stream; a user's standing also reads their channel role
//!   (`crate::channels`).
//! - the user's chat token bucket, updated conditionally on its previous `updatedMs` so
//!   that concurrent messages cannot spend one token twice.
//! - the viewer session per connection: playback reports (quality, buffering).
//!
//! Q&A lives in `questions.rs`, quality samples in `metrics.rs`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnValue, WriteRequest};
use serde::{Deserialize, Serialize};

use rill_core::realtime::{Bucket, Connection, EndedView, RateLimit, Refusal, Standing};
use rill_core::store::{Audience, PresenceUpdate, RealtimeStore, StoreError};
use rill_core::stream::Stream;
use rill_core::time::{self, Timestamp};

use crate::keys::{self, ItemKey, Key, Listed};
use crate::store::{DynamoStore, from_item, n, s, to_item, unavailable, unless_condition_failed};

/// Rate-limit and viewer-session items outlive the stream by a day, then expire.
pub(crate) const DAY_SECONDS: i64 = 24 * 3600;
/// Items in one `BatchWriteItem`.
const BATCH_WRITE_MAX: usize = 25;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ConnectionItem {
    pk: String,
    sk: String,
    entity: String,
    ttl: i64,
    #[serde(flatten)]
    pub(crate) connection: Connection,
}

impl ConnectionItem {
    /// The item of one socket, listed under its stream.
    pub(crate) fn new(connection: &Connection, ttl: i64) -> ConnectionItem {
        let key = keys::connection(&connection.stream_id, &connection.connection_id);
        ConnectionItem {
            pk: key.pk,
            sk: key.sk,
            entity: "connection".into(),
            ttl,
            connection: connection.clone(),
        }
    }
}

pub(crate) fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl DynamoStore {
    async fn set_flag(
        &self,
        key: Key,
        on: bool,
        extra: &[(&str, AttributeValue)],
    ) -> Result<(), StoreError> {
        if on {
            let mut req = self
                .db
                .put_item()
                .table_name(&self.table)
                .item("pk", s(key.pk))
                .item("sk", s(key.sk));
            for (k, v) in extra {
                req = req.item(*k, v.clone());
            }
            req.send()
                .await
                .map_err(|e| unavailable("put flag", e.into_service_error()))?;
        } else {
            self.db
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key.item()))
                .send()
                .await
                .map_err(|e| unavailable("delete flag", e.into_service_error()))?;
        }
        Ok(())
    }
}

impl DynamoStore {
    /// The ended view's item (`SESSION#`), put whole so a repeat writes the same item.
    fn session_put(&self, view: &EndedView) -> Result<WriteRequest, StoreError> {
        let connection = &view.connection;
        let ended = view.ended();
        let key = keys::session(&connection.stream_id, &connection.connection_id);
        let mut item = key.item();
        item.insert("entity".into(), s("session"));
        item.insert("watchMs".into(), n(view.watch_ms()));
        item.insert(
            "connectedAt".into(),
            s(time::format(&connection.connected_at)),
        );
        item.insert("endedAt".into(), s(time::format(&ended)));
        item.insert("ttl".into(), n(ended.timestamp() + 30 * DAY_SECONDS));
        if let Some(user) = &connection.user_id {
            item.insert("userId".into(), s(user));
        }
        Ok(WriteRequest::builder()
            .put_request(build(PutRequest::builder().set_item(Some(item)).build())?)
            .build())
    }

    /// Peak is a max, which DynamoDB cannot compute in place: raised conditionally, a lower
    /// count changes nothing.
    async fn raise_peak(&self, stream_id: &str, count: u64) -> Result<(), StoreError> {
        self.update_stream_if(
            stream_id,
            "SET peakViewers = :n",
            "attribute_exists(pk) AND (attribute_not_exists(peakViewers) OR peakViewers < :n)",
            &[(":n", n(count))],
            "raise peak",
        )
        .await?;
        Ok(())
    }
}

/// `(viewerCount, peakViewers)` of a stream item (attributes absent: 0).
fn counts_of(item: &std::collections::HashMap<String, AttributeValue>) -> (u64, u64) {
    let get = |name: &str| match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse::<u64>().unwrap_or(0),
        _ => 0,
    };
    (get("viewerCount"), get("peakViewers"))
}

#[async_trait]
impl RealtimeStore for DynamoStore {
    async fn open_connection(
        &self,
        connection: &Connection,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        // No condition: connection ids are unique (API Gateway's).
        let item = ConnectionItem::new(connection, expires_at.timestamp());
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .send()
            .await
            .map_err(|e| unavailable("open connection", e.into_service_error()))?;
        Ok(())
    }

    async fn close_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(
                keys::connection(&connection.stream_id, &connection.connection_id).item(),
            ))
            .send()
            .await
            .map_err(|e| unavailable("close connection", e.into_service_error()))?;
        Ok(())
    }

    async fn prune_connection(
        &self,
        stream_id: &str,
        connection_id: &str,
        registered_before: Timestamp,
    ) -> Result<bool, StoreError> {
        let out = self
            .db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::connection(stream_id, connection_id).item()))
            .condition_expression("attribute_exists(pk) AND connectedAt < :before")
            .expression_attribute_values(":before", s(time::format(&registered_before)))
            .send()
            .await;
        Ok(unless_condition_failed(out, "prune connection")?.is_some())
    }

    async fn record_ended_views(&self, views: &[EndedView]) -> Result<(), StoreError> {
        // One request may not name an item twice.
        let mut seen = std::collections::HashSet::new();
        let requests = views
            .iter()
            .filter(|v| seen.insert((&v.connection.stream_id, &v.connection.connection_id)))
            .map(|v| self.session_put(v))
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            self.batch_write(chunk.to_vec(), "record ended views")
                .await?;
        }
        Ok(())
    }

    async fn audience_of(&self, stream_id: &str, consistent: bool) -> Result<Audience, StoreError> {
        let items = self
            .query_listed(
                stream_id,
                Listed::Connections,
                Some("pk, sk, counted"),
                consistent,
                "list connections",
            )
            .await?;
        let mut audience = Audience::default();
        for item in &items {
            if let ItemKey::Connection { connection_id, .. } = keys::parse_item(item) {
                audience.connection_ids.push(connection_id.to_owned());
                // Items written before `counted` existed were viewers (Connection's default).
                if !matches!(item.get("counted"), Some(AttributeValue::Bool(false))) {
                    audience.viewers += 1;
                }
            }
        }
        Ok(audience)
    }

    async fn record_presence(
        &self,
        stream_id: &str,
        presence: &PresenceUpdate,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::stream(stream_id).item()))
            // `countedAt`: when the count was taken, for the analytics' timeline (a table
            // stream record's own time is coarse: whole seconds on AWS, worse locally).
            .update_expression(
                "SET viewerCount = :c, presenceAt = :at, countedAt = :now ADD totalViews :v",
            )
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(presenceAt) OR presenceAt < :at)",
            )
            .expression_attribute_values(":c", n(presence.viewers))
            .expression_attribute_values(":v", n(presence.new_views))
            .expression_attribute_values(":at", s(&presence.position))
            .expression_attribute_values(":now", s(time::format(&time::now())))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        let item = match out {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) => {
                let e = e.into_service_error();
                match e {
                    // Applied already (a redelivered batch), or the stream is gone (no item).
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(f) => {
                        match f.item {
                            Some(item) => item,
                            None => return Ok(None),
                        }
                    }
                    e => return Err(unavailable("record presence", e)),
                }
            }
        };
        let (count, peak) = counts_of(&item);
        if count > peak {
            self.raise_peak(stream_id, count).await?;
        }
        Ok(Some((count, peak.max(count))))
    }

    async fn standing(&self, stream: &Stream, user_id: &str) -> Result<Standing, StoreError> {
        let keys = vec![
            keys::ban(&stream.id, user_id).item(),
            keys::moderator(&stream.id, user_id).item(),
            keys::member(&stream.channel_id, user_id).item(),
            keys::channel(&stream.channel_id).item(),
        ];
        let items = self.get_many_consistent(keys, "standing").await?;
        let mut standing = Standing {
            is_owner: stream.is_owned_by(user_id),
            ..Standing::default()
        };
        let (mut owner, mut member) = (None, None);
        for item in &items {
            match keys::parse_item(item) {
                ItemKey::Ban { .. } => standing.is_banned = true,
                ItemKey::Moderator { .. } => standing.is_moderator = true,
                ItemKey::Member { .. } => member = crate::channels::role_of(item),
                ItemKey::Channel { .. } => {
                    owner = crate::channels::owner_of(item);
                }
                _ => {}
            }
        }
        standing.channel_role = DynamoStore::channel_role_of(owner.as_deref(), member, user_id);
        Ok(standing)
    }

    async fn set_banned(
        &self,
        stream_id: &str,
        user_id: &str,
        banned: bool,
    ) -> Result<(), StoreError> {
        let extra = [("entity", s("ban")), ("at", s(time::format(&time::now())))];
        self.set_flag(keys::ban(stream_id, user_id), banned, &extra)
            .await
    }

    async fn set_moderator(
        &self,
        stream_id: &str,
        user_id: &str,
        moderator: bool,
    ) -> Result<(), StoreError> {
        let extra = [("entity", s("moderator")), ("userId", s(user_id))];
        self.set_flag(keys::moderator(stream_id, user_id), moderator, &extra)
            .await
    }

    async fn moderators(&self, stream_id: &str) -> Result<Vec<String>, StoreError> {
        let items = self
            .query_listed(
                stream_id,
                Listed::Moderators,
                None,
                false,
                "list moderators",
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| match keys::parse_item(i) {
                ItemKey::Moderator { user_id, .. } => Some(user_id.to_owned()),
                _ => None,
            })
            .collect())
    }

    async fn take_message_token(
        &self,
        stream_id: &str,
        user_id: &str,
        limit: &RateLimit,
        slow_mode_seconds: u32,
        now_ms: i64,
        known: Option<Bucket>,
    ) -> Result<Result<Bucket, Refusal>, StoreError> {
        let key = keys::rate(stream_id, user_id).item();
        // The first round trusts the bucket this instance wrote last (no read); a lost race
        // means someone else spent a token since: re-read and decide again.
        let mut known = known;
        for _ in 0..3 {
            let previous: Option<Bucket> = match known.take() {
                Some(b) => Some(b),
                None => {
                    let out = self
                        .db
                        .get_item()
                        .table_name(&self.table)
                        .set_key(Some(key.clone()))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(|e| unavailable("get bucket", e.into_service_error()))?;
                    out.item.map(from_item).transpose()?
                }
            };
            let bucket = previous.unwrap_or_else(|| Bucket::full(limit));
            let next = match bucket.take(limit, slow_mode_seconds, now_ms) {
                Ok(next) => next,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let mut req = self
                .db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression(
                    "SET tokens = :t, updatedMs = :u, lastMessageMs = :l, #ttl = :ttl",
                )
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":t", n(next.tokens))
                .expression_attribute_values(":u", n(next.updated_ms))
                .expression_attribute_values(":l", n(next.last_message_ms))
                .expression_attribute_values(":ttl", n(now_ms / 1000 + DAY_SECONDS))
                .return_values(ReturnValue::None);
            req = match previous {
                Some(p) => req
                    .condition_expression("updatedMs = :prev")
                    .expression_attribute_values(":prev", n(p.updated_ms)),
                None => req.condition_expression("attribute_not_exists(pk)"),
            };
            match req.send().await {
                Ok(_) => return Ok(Ok(next)),
                Err(e) => {
                    let e = e.into_service_error();
                    if !e.is_conditional_check_failed_exception() {
                        return Err(unavailable("take token", e));
                    }
                }
            }
        }
        Ok(Err(Refusal::new(
            "rate_limited",
            "too many messages: slow down",
        )))
    }

    async fn record_heartbeat(
        &self,
        connection: &Connection,
        report: &rill_core::qoe::PlaybackReport,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut set = vec!["entity = :e", "lastSeen = :now", "#ttl = :ttl"];
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(
                keys::viewer(&connection.stream_id, &connection.connection_id).item(),
            ))
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":e", s("viewer"))
            .expression_attribute_values(":now", s(time::format(&now)))
            .expression_attribute_values(":ttl", n(now.timestamp() + DAY_SECONDS))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":b", n(report.rebuffer_ms))
            .expression_attribute_values(":rb", n(report.rebuffers))
            .expression_attribute_values(":up", n(report.switches_up))
            .expression_attribute_values(":down", n(report.switches_down))
            .expression_attribute_values(":drop", n(report.dropped_frames));
        // Where the view is, for analytics: in the same write, at no extra call.
        if let Some(c) = &connection.country {
            set.push("country = :cty");
            req = req.expression_attribute_values(":cty", s(c));
        }
        if let Some(ua) = &connection.user_agent {
            set.push("userAgent = :ua");
            req = req.expression_attribute_values(":ua", s(ua));
        }
        if let Some(q) = &report.rendition {
            set.push("quality = :q");
            req = req.expression_attribute_values(":q", s(q));
        }
        if let Some(v) = report.startup_ms {
            // The first report of it wins: a player restarting after an error does not
            // rewrite how long the view took to start.
            set.push("startupMs = if_not_exists(startupMs, :st)");
            req = req.expression_attribute_values(":st", n(v));
        }
        if let Some(v) = report.latency_ms {
            set.push("latencyMs = :lat");
            req = req.expression_attribute_values(":lat", n(v));
        }
        if let Some(v) = report.bandwidth_kbps {
            set.push("bandwidthKbps = :bw");
            req = req.expression_attribute_values(":bw", n(v));
        }
        if let Some(e) = &report.fatal_error {
            set.push("fatalError = :err");
            req = req.expression_attribute_values(":err", s(e));
        }
        if report.started {
            set.push("started = :started");
            req = req.expression_attribute_values(":started", AttributeValue::Bool(true));
        }
        let expression = format!(
            "SET {} ADD heartbeats :one, bufferingMs :b, rebuffers :rb, switchesUp :up, \
             switchesDown :down, droppedFrames :drop",
            set.join(", ")
        );
        req.update_expression(expression)
            .send()
            .await
            .map_err(|e| unavailable("heartbeat", e.into_service_error()))?;
        Ok(())
    }
}
