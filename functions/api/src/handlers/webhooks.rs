//! A channel's webhooks (`rill_core::webhook`; delivery in [`crate::webhooks`]): only the
//! channel's owner registers, lists, changes and removes them. The secret is never in an
//! answer, except a generated one, once, in the creation's.
//!
//! Storage budgets: create 1 role read + 1 transaction (the put and the channel's count);
//! list 1 role read + 1 query; update 1 role read + 1 read + 1 write (+ 1 query of pending
//! streams when re-enabled); delete 1 role read + 1 transaction.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::channel::ChannelRole;
use rill_core::store::StoreError;
use rill_core::webhook::{
    self, MAX_PER_CHANNEL, NewWebhook, Webhook, WebhookPatch, check_events, check_secret,
};
use rill_core::{ids, time, validate};
use serde_json::json;

use super::channels::{channel_param, role_in};
use crate::request::{id_param, json, json_body};
use crate::webhooks::Job;
use crate::{ApiError, App};

/// The channel id of the path, after checking that the caller owns the channel.
async fn owned_channel(app: &App, req: &Request) -> Result<String, ApiError> {
    let id = channel_param(req)?;
    let caller = app.auth.require(req).await?;
    if role_in(app, &id, &caller.user_id).await? != Some(ChannelRole::Owner) {
        return Err(ApiError::forbidden(
            "not_owner",
            "only the channel's owner manages its webhooks",
        ));
    }
    Ok(id)
}

async fn checked_url(app: &App, url: &str) -> Result<String, ApiError> {
    app.webhook_settings
        .policy
        .check_target(url)
        .await
        .map_err(|message| validate::ValidationError {
            field: "url",
            message,
        })?;
    Ok(url.to_owned())
}

/// `POST /api/channels/{channelId}/webhooks` `{url, secret?, events?}`.
pub async fn create(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let channel_id = owned_channel(&app, &req).await?;
    let input: NewWebhook = json_body(&req)?;
    let events = check_events(input.events.as_deref())?;
    let (secret, generated) = match input.secret {
        Some(secret) => {
            check_secret(&secret)?;
            (secret, false)
        }
        None => (
            webhook::generate_secret()
                .map_err(|e| ApiError::Internal(format!("random secret: {e}")))?,
            true,
        ),
    };
    let hook = Webhook {
        id: ids::new_id(),
        channel_id,
        url: checked_url(&app, &input.url).await?,
        events,
        enabled: true,
        disabled_reason: None,
        failures: 0,
        last_error: None,
        last_delivery_at: None,
        created_at: time::now(),
    };
    match app.webhooks.create_webhook(&hook, &secret).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::conflict(
                "webhook_limit",
                format!("a channel has at most {MAX_PER_CHANNEL} webhooks"),
            ));
        }
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("channel")),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(channel_id = %hook.channel_id, webhook_id = %hook.id, "webhook registered");
    let mut body = serde_json::to_value(&hook)
        .map_err(|e| ApiError::Internal(format!("encode webhook: {e}")))?;
    if generated {
        // Shown this once: it is not readable afterwards.
        body["secret"] = secret.into();
    }
    json(201, &body)
}

/// `GET /api/channels/{channelId}/webhooks`: every webhook with its delivery state.
pub async fn list(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let channel_id = owned_channel(&app, &req).await?;
    let items = app.webhooks.webhooks(&channel_id).await?;
    json(200, &json!({"items": items}))
}

/// `PATCH /api/channels/{channelId}/webhooks/{webhookId}` `{url?, secret?, events?,
/// enabled?}`. Re-enabling clears the failures and resumes every stream where its last
/// acknowledged batch ended.
pub async fn update(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let channel_id = owned_channel(&app, &req).await?;
    let webhook_id = id_param(&req, "webhookId", "webhook")?;
    let patch: WebhookPatch = json_body(&req)?;
    let (mut hook, _) = app
        .webhooks
        .webhook_with_secret(&channel_id, &webhook_id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    if let Some(url) = &patch.url {
        hook.url = checked_url(&app, url).await?;
    }
    if let Some(secret) = &patch.secret {
        check_secret(secret)?;
    }
    if patch.events.is_some() {
        hook.events = check_events(patch.events.as_deref())?;
    }
    let resumed = patch.enabled == Some(true) && !hook.enabled;
    if let Some(enabled) = patch.enabled {
        hook.enabled = enabled;
        if enabled {
            hook.disabled_reason = None;
            hook.failures = 0;
            hook.last_error = None;
        }
    }
    app.webhooks
        .update_webhook(&hook, patch.secret.as_deref())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("webhook"),
            e => e.into(),
        })?;
    tracing::info!(%channel_id, %webhook_id, resumed, "webhook changed");
    if resumed {
        for stream_id in app.webhooks.pending_streams(&webhook_id).await? {
            app.start_delivery(Job {
                channel_id: channel_id.clone(),
                webhook_id: webhook_id.clone(),
                stream_id,
            })
            .await?;
        }
    }
    json(200, &hook)
}

/// `DELETE /api/channels/{channelId}/webhooks/{webhookId}`.
pub async fn delete(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let channel_id = owned_channel(&app, &req).await?;
    let webhook_id = id_param(&req, "webhookId", "webhook")?;
    app.webhooks
        .delete_webhook(&channel_id, &webhook_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("webhook"),
            e => e.into(),
        })?;
    tracing::info!(%channel_id, %webhook_id, "webhook removed");
    json(200, &json!({"id": webhook_id, "deleted": true}))
}
