//! DynamoDB implementation of [`WebhookStore`]: a webhook is an item in its channel's
//! partition (`WEBHOOK#{id}`, with its secret), counted on the channel item
//! (`webhookCount`, at most [`MAX_PER_CHANNEL`], kept in the same transaction as the put or
//! delete); what it owes each stream is a cursor item in the webhook's own partition
//! (`WEBHOOK#{id}` / `STREAM#{stream}`), so cursor writes never touch the channel's
//! partition. Key shapes in [`crate::keys`].
//!
//! Invariants:
//! - the secret is written and read here only; [`Webhook`] (what answers carry) has none;
//! - a cursor moves only under its lease (`owner` matches), never backwards;
//! - a lease is taken only when free or expired (`leaseUntil` < now), so one delivery run
//!   at a time sends a stream's batches: the order the feed gives them.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use rill_core::event::EventType;
use rill_core::store::{StoreError, WebhookStore};
use rill_core::time::{self, Timestamp, rfc3339_millis};
use rill_core::webhook::{Cursor, MAX_PER_CHANNEL, Webhook};

use crate::keys;
use crate::store::{DynamoStore, from_item, n, s, to_item, unless_condition_failed};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookItem {
    pk: String,
    sk: String,
    entity: String,
    id: String,
    channel_id: String,
    url: String,
    secret: String,
    events: Vec<EventType>,
    enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    #[serde(default)]
    failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(
        with = "rfc3339_millis::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    last_delivery_at: Option<Timestamp>,
    #[serde(with = "rfc3339_millis")]
    created_at: Timestamp,
}

impl WebhookItem {
    fn new(hook: &Webhook, secret: &str) -> WebhookItem {
        let key = keys::webhook(&hook.channel_id, &hook.id);
        WebhookItem {
            pk: key.pk,
            sk: key.sk,
            entity: "webhook".into(),
            id: hook.id.clone(),
            channel_id: hook.channel_id.clone(),
            url: hook.url.clone(),
            secret: secret.to_owned(),
            events: hook.events.clone(),
            enabled: hook.enabled,
            disabled_reason: hook.disabled_reason.clone(),
            failures: hook.failures,
            last_error: hook.last_error.clone(),
            last_delivery_at: hook.last_delivery_at,
            created_at: hook.created_at,
        }
    }

    fn into_webhook(self) -> (Webhook, String) {
        (
            Webhook {
                id: self.id,
                channel_id: self.channel_id,
                url: self.url,
                events: self.events,
                enabled: self.enabled,
                disabled_reason: self.disabled_reason,
                failures: self.failures,
                last_error: self.last_error,
                last_delivery_at: self.last_delivery_at,
                created_at: self.created_at,
            },
            self.secret,
        )
    }
}

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Errors are short and owner-visible; cut what a receiver might have answered at length.
fn short(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn create_webhook(&self, hook: &Webhook, secret: &str) -> Result<(), StoreError> {
        let count = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::channel(&hook.channel_id).item()))
                .update_expression("ADD webhookCount :one")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(webhookCount) OR webhookCount < :max)",
                )
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":max", n(MAX_PER_CHANNEL))
                .build(),
        )?;
        let put = built(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&WebhookItem::new(hook, secret))?))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().update(count).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        match self.transact(items, "create webhook").await {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(e),
            // No channel, or full (ids are fresh ULIDs: the put does not collide).
            Err(None) => match self
                .get_consistent(keys::channel(&hook.channel_id), "get channel")
                .await?
            {
                None => Err(StoreError::NotFound),
                Some(_) => Err(StoreError::Conflict {
                    current: None,
                    command: None,
                }),
            },
        }
    }

    async fn webhooks(&self, channel_id: &str) -> Result<Vec<Webhook>, StoreError> {
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(keys::channel_pk(channel_id)))
            .expression_attribute_values(":prefix", s(keys::webhooks_prefix()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::store::unavailable("list webhooks", e.into_service_error()))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item::<WebhookItem>(i).map(|w| w.into_webhook().0))
            .collect()
    }

    async fn webhook_with_secret(
        &self,
        channel_id: &str,
        webhook_id: &str,
    ) -> Result<Option<(Webhook, String)>, StoreError> {
        self.get_consistent(keys::webhook(channel_id, webhook_id), "get webhook")
            .await?
            .map(|i| from_item::<WebhookItem>(i).map(WebhookItem::into_webhook))
            .transpose()
    }

    async fn update_webhook(&self, hook: &Webhook, secret: Option<&str>) -> Result<(), StoreError> {
        let mut set = vec![
            "#url = :url",
            "events = :events",
            "enabled = :enabled",
            "failures = :failures",
        ];
        let mut remove = Vec::new();
        let mut update = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook(&hook.channel_id, &hook.id).item()))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#url", "url")
            .expression_attribute_values(":url", s(&hook.url))
            .expression_attribute_values(":events", to_list(&hook.events)?)
            .expression_attribute_values(
                ":enabled",
                aws_sdk_dynamodb::types::AttributeValue::Bool(hook.enabled),
            )
            .expression_attribute_values(":failures", n(hook.failures));
        match &hook.disabled_reason {
            Some(reason) => {
                set.push("disabledReason = :reason");
                update = update.expression_attribute_values(":reason", s(reason));
            }
            None => remove.push("disabledReason"),
        }
        if hook.last_error.is_none() {
            remove.push("lastError");
        }
        if let Some(secret) = secret {
            set.push("secret = :secret");
            update = update.expression_attribute_values(":secret", s(secret));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let out = update.update_expression(expression).send().await;
        match unless_condition_failed(out, "update webhook")? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound),
        }
    }

    async fn delete_webhook(&self, channel_id: &str, webhook_id: &str) -> Result<(), StoreError> {
        let delete = built(
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(keys::webhook(channel_id, webhook_id).item()))
                .condition_expression("attribute_exists(pk)")
                .build(),
        )?;
        let count = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::channel(channel_id).item()))
                .update_expression("ADD webhookCount :minus")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":minus", n(-1))
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(count).build(),
        ];
        match self.transact(items, "delete webhook").await {
            Ok(()) => Ok(()),
            Err(None) => Err(StoreError::NotFound),
            Err(Some(e)) => Err(e),
        }
    }

    async fn record_failure(
        &self,
        channel_id: &str,
        webhook_id: &str,
        error: &str,
        disable: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook(channel_id, webhook_id).item()))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":error", s(short(error)));
        let mut expression = "SET lastError = :error ADD failures :one".to_owned();
        if let Some(reason) = disable {
            expression = "SET lastError = :error, enabled = :off, disabledReason = :reason ADD failures :one".into();
            update = update
                .expression_attribute_values(
                    ":off",
                    aws_sdk_dynamodb::types::AttributeValue::Bool(false),
                )
                .expression_attribute_values(":reason", s(short(reason)));
        }
        let out = update.update_expression(expression).send().await;
        // A webhook deleted meanwhile has nothing to record.
        unless_condition_failed(out, "record webhook failure")?;
        Ok(())
    }

    async fn record_success(
        &self,
        channel_id: &str,
        webhook_id: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook(channel_id, webhook_id).item()))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET failures = :zero, lastDeliveryAt = :at REMOVE lastError")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(time::format(&at)))
            .send()
            .await;
        unless_condition_failed(out, "record webhook success")?;
        Ok(())
    }

    async fn lease_cursor(
        &self,
        webhook_id: &str,
        stream_id: &str,
        owner: &str,
        until: Timestamp,
    ) -> Result<Option<Cursor>, StoreError> {
        let now = time::now().timestamp_millis();
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook_cursor(webhook_id, stream_id).item()))
            .update_expression(
                "SET leaseOwner = :me, leaseUntil = :until, lastSeq = if_not_exists(lastSeq, :zero), entity = :entity",
            )
            .condition_expression("attribute_not_exists(leaseUntil) OR leaseUntil < :now")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":until", n(until.timestamp_millis()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":entity", s("webhookCursor"))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        let Some(out) = unless_condition_failed(out, "lease webhook cursor")? else {
            return Ok(None);
        };
        let attrs = out.attributes.unwrap_or_default();
        let last_seq = attrs
            .get("lastSeq")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let pending = attrs
            .get("pending")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false);
        Ok(Some(Cursor { last_seq, pending }))
    }

    async fn advance_cursor(
        &self,
        webhook_id: &str,
        stream_id: &str,
        owner: &str,
        last_seq: u64,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook_cursor(webhook_id, stream_id).item()))
            .update_expression("SET lastSeq = :seq, leaseUntil = :until")
            .condition_expression("leaseOwner = :me AND lastSeq <= :seq")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":seq", n(last_seq))
            .expression_attribute_values(":until", n(until.timestamp_millis()))
            .send()
            .await;
        Ok(unless_condition_failed(out, "advance webhook cursor")?.is_some())
    }

    async fn release_cursor(
        &self,
        webhook_id: &str,
        stream_id: &str,
        owner: &str,
        pending: bool,
    ) -> Result<(), StoreError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook_cursor(webhook_id, stream_id).item()))
            .update_expression("SET pending = :pending REMOVE leaseUntil, leaseOwner")
            .condition_expression("leaseOwner = :me")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(
                ":pending",
                aws_sdk_dynamodb::types::AttributeValue::Bool(pending),
            )
            .send()
            .await;
        // Lost meanwhile (it had expired): the new holder decides.
        unless_condition_failed(out, "release webhook cursor")?;
        Ok(())
    }

    async fn mark_pending(&self, webhook_id: &str, stream_id: &str) -> Result<(), StoreError> {
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook_cursor(webhook_id, stream_id).item()))
            .update_expression(
                "SET pending = :on, lastSeq = if_not_exists(lastSeq, :zero), entity = :entity",
            )
            .expression_attribute_values(":on", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":entity", s("webhookCursor"))
            .send()
            .await
            .map_err(|e| {
                crate::store::unavailable("mark webhook cursor", e.into_service_error())
            })?;
        Ok(())
    }

    async fn pending_streams(&self, webhook_id: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .filter_expression("pending = :on")
                .expression_attribute_values(":pk", s(keys::webhook_cursor_pk(webhook_id)))
                .expression_attribute_values(
                    ":on",
                    aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| {
                    crate::store::unavailable("list pending cursors", e.into_service_error())
                })?;
            for item in page.items.unwrap_or_default() {
                if let Some(stream) = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|sk| keys::cursor_stream(sk))
                {
                    out.push(stream.to_owned());
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}

fn to_list(events: &[EventType]) -> Result<aws_sdk_dynamodb::types::AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(events)
        .map_err(|e| StoreError::Unavailable(format!("encode events: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_visible_error_is_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let cut = short(&long);
        assert!(cut.len() <= 303 && cut.ends_with("..."), "{}", cut.len());
        assert_eq!(short("answered 503"), "answered 503");
    }

    #[test]
    fn the_stored_item_keeps_the_secret_and_the_webhook_does_not() {
        let hook = Webhook {
            id: "w".into(),
            channel_id: "c".into(),
            url: "https://example.com/".into(),
            events: vec![EventType::Start],
            enabled: true,
            disabled_reason: None,
            failures: 0,
            last_error: None,
            last_delivery_at: None,
            created_at: time::now(),
        };
        let item = WebhookItem::new(&hook, "0123456789abcdef");
        assert_eq!(item.pk, "CHANNEL#c");
        assert_eq!(item.sk, "WEBHOOK#w");
        let (back, secret) = item.into_webhook();
        assert_eq!(back, hook);
        assert_eq!(secret, "0123456789abcdef");
    }
}
